#!/usr/bin/env python3
"""Python baseline for `audit_bench`: the straightforward way to turn an audit-log sink object into NDJSON.

Standard library only (json + re), written the way one would without thinking about speed, but doing
the same work as the native path (b) of the benchmark (`AuditLogReader` + the NDJSON writer):

- read the object line by line (a Cloud Storage sink writes one LogEntry JSON per line; a leading
  UTF-8 byte-order mark and blank lines are skipped), `json.loads` each line; a line longer than
  512 KiB, one that is not JSON or not UTF-8, or a JSON value that is not an object is malformed,
  and so is a field of the wrong JSON type;
- skip entries without `protoPayload`, of another `@type` or of another `serviceName`;
- an entry without `insertId` or a valid RFC 3339 `timestamp` (0001..9999) is malformed; an entry
  with the same `insertId` and `timestamp` as one of the last 16,384 events is a duplicate;
- classify the rest with the audit-entry rules (crates/core/src/audit/classify.rs): resource name,
  Docker request URL, method name -> format / target / action, registry host and repository,
  reference and digest, gRPC code -> HTTP status, user agent (client family and version: the
  usage baseline's rules, `classify_baseline.client`), principal, caller class;
- serialise one JSON object per event (the fields and order of `RegistryEvent`), into a 4 MiB chunk
  that is encoded and dropped when full (an upload chunk going nowhere); the chunks' SHA-256 is
  taken too, and the time it takes is left out of the timings (it is there only so that the
  benchmark can check the NDJSON byte for byte against the native path's).

JSON lines only: gcloud's one-array layout (`gcloud logging read --format=json`) is not handled here.

Usage: audit_baseline.py OBJECT [--runs N] [--bucket B] [--name NAME] [--generation G].
Prints one JSON object: per-run seconds and counts.
"""

import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classify_baseline import GFE, client, event_time  # noqa: E402  (the usage baseline's rules)

CHUNK = 4 << 20
MAX_ENTRY = 512 * 1024
WINDOW = 16_384
MIN_TIME, MAX_TIME = -62_135_596_800_000_000, 253_402_300_799_999_999
AUDIT_LOG = "type.googleapis.com/google.cloud.audit.AuditLog"
AR = "artifactregistry.googleapis.com"
GCR_HOSTS = {"gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"}
EPOCH = datetime.date(1970, 1, 1).toordinal()

RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z")
FORMATS = {"Maven": "maven", "Npm": "npm", "Python": "python", "Apt": "apt", "Yum": "yum", "Go": "go"}
DOWNLOADS = {"Artifact-Download", "File-Download", "InstallPackage", "ViewPackageFile", "DownloadZipFile",
             "DownloadModFile"}
DOCKER = {
    "GetManifest": ("manifest", "pull"), "HeadManifest": ("manifest", "other"), "PutManifest": ("manifest", "push"),
    "DeleteManifest": ("manifest", "delete"), "DeleteTag": ("manifest", "delete"),
    "ServeBlob": ("blob", "pull"), "EmptyTarBlob": ("blob", "pull"),
    "HeadBlob": ("blob", "other"), "HeadEmptyTarBlob": ("blob", "other"), "StartUpload": ("blob", "other"),
    "CancelUpload": ("blob", "other"), "FinishUpload": ("blob", "push"), "DeleteBlob": ("blob", "delete"),
    "GetTags": ("repository", "list"), "GetEmptyTags": ("repository", "list"), "Catalog": ("repository", "list"),
    "CreateOnPush": ("repository", "admin"),
}
ADMIN_PREFIXES = ("Create", "Update", "Delete", "Set", "Import", "Batch")
CODES = {0: 200, 1: 499, 3: 400, 9: 400, 11: 400, 4: 504, 5: 404, 6: 409, 10: 409, 7: 403, 8: 429, 12: 501,
         14: 503, 16: 401}


class Malformed(Exception):
    pass


def string(obj, key):
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise Malformed(key)
    return value


def record(obj, key):
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise Malformed(key)
    return value or None


def timestamp_micros(text):
    m = RFC3339.match(text)
    if not m:
        raise Malformed("timestamp")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zulu, sign, off_h, off_m = m.group(7), m.group(8), m.group(9), m.group(10), m.group(11)
    offset = 0
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            raise Malformed("timestamp")
        offset = int(off_h) * 3600 + int(off_m) * 60
        if sign == "-":
            offset = -offset
    if not 1 <= year <= 9999 or hour > 23 or minute > 59 or second > 60:
        raise Malformed("timestamp")
    try:
        days = datetime.date(year, month, day).toordinal() - EPOCH
    except ValueError:
        raise Malformed("timestamp") from None
    micros = int((fraction or "")[:6].ljust(6, "0"))
    t = (days * 86400 + hour * 3600 + minute * 60 + min(second, 59) - offset) * 1_000_000 + micros
    if not MIN_TIME <= t <= MAX_TIME:
        raise Malformed("timestamp")
    return t


def parse_resource(name):
    """`projects/P/locations/L[/repositories/R[/dockerImages/IMAGE...]]` -> (P, L, R, IMAGE) or None."""
    if not name.startswith("projects/"):
        return None
    project, sep, rest = name[len("projects/"):].partition("/locations/")
    if not sep or not project or "/" in project or not rest:
        return None
    location, sep, rest = rest.partition("/repositories/")
    if not sep:
        return None if "/" in location else (project, location, None, None)
    repository, _, rest = rest.partition("/")
    if not location or "/" in location or not repository:
        return None
    image = None
    if rest.startswith("dockerImages/"):
        image = re.split(r"[@:/]", rest[len("dockerImages/"):], maxsplit=1)[0] or None
    return project, location, repository, image


def docker_url(url):
    """(image path, reference) of `/v2/PATH/manifests/REF`, `/blobs/DIGEST`, `/blobs/uploads[/ID]`, `/tags/list`."""
    path = re.split(r"[?#]", url, maxsplit=1)[0]
    if not path.startswith("/v2/"):
        return None, None
    rest = path[4:]
    if rest.endswith("/tags/list"):
        return rest[:-len("/tags/list")], None
    if "/" not in rest:
        return None, None
    head, last = rest.rsplit("/", 1)
    if head.endswith("/blobs/uploads"):
        return head[:-len("/blobs/uploads")], None
    if head.endswith("/blobs") and last == "uploads":
        return head[:-len("/blobs")], None
    for marker in ("/manifests", "/blobs"):
        if head.endswith(marker):
            return head[:-len(marker)], (last or None)
    return None, None


def method_kind(name):
    """(format, target, action) of a method name."""
    if name.startswith("Docker-"):
        target, act = DOCKER.get(name[len("Docker-"):], ("manifest", "other"))
        return "docker", target, act
    if name.startswith("google.devtools.artifactregistry."):
        rpc = name.rsplit(".", 1)[-1]
        if rpc == "DownloadFile":
            return "generic", "package", "download"
        if rpc.startswith("List"):
            return None, "repository", "list"
        if rpc.startswith(ADMIN_PREFIXES):
            return None, "repository", "admin"
        return None, "repository", "other"
    prefix, _, rest = name.partition("-")
    fmt = FORMATS.get(prefix)
    if fmt is None:
        return None, "repository", "other"
    if rest in DOWNLOADS:
        act = "download"
    elif "Upload" in rest or "Publish" in rest:
        act = "upload"
    else:
        act = "other"
    return fmt, "package", act


def caller_class(principal, ua):
    p = principal or ""
    agent = (p.endswith("@container-analysis.iam.gserviceaccount.com") or p.endswith("@cloudbuild.gserviceaccount.com")
             or (p.startswith("service-") and "@gcp-sa-" in p and p.endswith(".iam.gserviceaccount.com")))
    if agent or ua.startswith("ContainerAnalysis"):
        return "google_internal_or_automation"
    if p.endswith(".gserviceaccount.com"):
        return "workload"
    return "end_user"


def check_shape(entry):
    """Every field the classifier reads has its JSON type (or is absent / null), as a typed parse demands."""
    if not isinstance(entry, dict):
        raise Malformed("not an object")
    string(entry, "insertId")
    string(entry, "timestamp")
    payload = record(entry, "protoPayload")
    if payload is None:
        return
    for key in ("@type", "serviceName", "methodName", "resourceName"):
        string(payload, key)
    status = record(payload, "status")
    if status is not None and status.get("code") is not None and type(status["code"]) is not int:
        raise Malformed("status.code")
    for key, fields in (("authenticationInfo", ("principalEmail", "principalSubject")),
                        ("requestMetadata", ("callerIp", "callerSuppliedUserAgent")),
                        ("request", ("requestUrl", "requestMethod"))):
        value = record(payload, key)
        for field in fields if value is not None else ():
            string(value, field)


def classify(entry, payload, micros, source, row, line):
    method_name = string(payload, "methodName")
    if method_name is None:
        raise Malformed("methodName")
    parsed = parse_resource(string(payload, "resourceName") or "")
    if parsed is None:
        raise Malformed("resourceName")
    project, location, repository, image = parsed
    fmt, target, act = method_kind(method_name)
    request = record(payload, "request") or {}
    request_url, request_method = string(request, "requestUrl"), string(request, "requestMethod")
    url_image, reference = docker_url(request_url) if fmt == "docker" and request_url is not None else (None, None)

    gcr = repository in GCR_HOSTS
    host = None
    if gcr and fmt == "docker":
        host = repository
    elif fmt not in (None, "generic"):
        host = f"{location}-{fmt}.pkg.dev"
    repo = None
    if repository is not None and fmt == "docker":
        if image is not None:
            path = urllib.parse.unquote(image, errors="replace")
        elif url_image is not None:
            parts = url_image.split("/", 1 if gcr else 2)
            path = parts[1 if gcr else 2] if len(parts) > (1 if gcr else 2) else ""
        else:
            path = None
        if path is not None:
            repo = project if gcr else f"{project}/{repository}"
            if path:
                repo += "/" + path
    elif repository is not None and fmt is not None:
        repo = f"{project}/{repository}"

    code = (record(payload, "status") or {}).get("code") or 0
    metadata = record(payload, "requestMetadata") or {}
    ua = GFE.sub("", (string(metadata, "callerSuppliedUserAgent") or "").strip())
    family, version = client(ua)
    auth = record(payload, "authenticationInfo") or {}
    principal = string(auth, "principalEmail") or string(auth, "principalSubject")
    return {
        "event_time": event_time(micros),
        "time_micros": micros,
        "registry_host": host,
        "project": project,
        "repository": repo,
        "image": f"{host.lower()}/{repo}" if host is not None and repo is not None else None,
        "digest": reference if reference is not None and reference.startswith("sha256:") else None,
        "target": target,
        "action": act,
        "success": code == 0,
        "status": CODES.get(code, 500),
        "method": request_method or "",
        "operation": method_name,
        "bucket": None,
        "object": None,
        "client_family": family,
        "client_version": version,
        "user_agent": ua,
        "caller_class": caller_class(principal, ua),
        "client_ip": string(metadata, "callerIp") or "",
        "request_bytes": 0,
        "response_bytes": 0,
        "time_taken_micros": 0,
        "request_id": entry["insertId"],
        "invalid_utf8": False,
        "source_bucket": source["bucket"],
        "source_object": source["name"],
        "source_generation": source["generation"],
        "source_row": row,
        "source_line": line,
        "source_kind": "audit_log",
        "principal": principal,
        "artifact_format": fmt,
        "reference": reference,
    }


def run(path, source):
    counts = {"entries": 0, "events": 0, "skipped": 0, "malformed": 0, "duplicates": 0, "ndjson_bytes": 0}
    actions = {}
    seen, recent = set(), collections.deque()
    digest, hashing = hashlib.sha256(), 0.0
    parts, size = [], 0

    def flush():
        nonlocal hashing
        data = "".join(parts).encode("utf-8")
        counts["ndjson_bytes"] += len(data)
        started = time.perf_counter()
        digest.update(data)
        hashing += time.perf_counter() - started

    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if len(raw.rstrip(b"\n")) > MAX_ENTRY:
                counts["entries"] += 1
                counts["malformed"] += 1
                continue
            text = raw.strip()
            if not text:
                continue
            counts["entries"] += 1
            row = counts["entries"]
            try:
                entry = json.loads(text)
                check_shape(entry)
                insert_id, stamp, payload = entry.get("insertId"), entry.get("timestamp"), entry.get("protoPayload")
                if payload is None:
                    counts["skipped"] += 1
                    continue
                kind, service = payload.get("@type"), payload.get("serviceName")
                if (kind is not None and kind != AUDIT_LOG) or service != AR:
                    counts["skipped"] += 1
                    continue
                if insert_id is None or stamp is None:
                    raise Malformed("insertId or timestamp")
                micros = timestamp_micros(stamp)
                event = classify(entry, payload, micros, source, row, number)
            except (ValueError, Malformed):  # json's errors (and UTF-8's) are ValueErrors
                counts["malformed"] += 1
                continue
            key = (insert_id, stamp)
            if key in seen:
                counts["duplicates"] += 1
                continue
            seen.add(key)
            recent.append(key)
            if len(recent) > WINDOW:
                seen.discard(recent.popleft())
            counts["events"] += 1
            actions[event["action"]] = actions.get(event["action"], 0) + 1
            out = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
            parts.append(out)
            size += len(out)
            if size >= CHUNK:
                flush()
                parts, size = [], 0
    if parts:
        flush()
    counts["actions"] = actions
    counts["sha256"] = digest.hexdigest()
    return counts, hashing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("object")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--bucket", default="demo-gcr-logs")
    parser.add_argument("--name", help="the object's name in the bucket (default: the file's name)")
    parser.add_argument("--generation", type=int, default=1)
    args = parser.parse_args()
    source = {"bucket": args.bucket, "name": args.name or os.path.basename(args.object),
              "generation": args.generation}
    seconds, hashing, counts = [], [], None
    for _ in range(args.runs):
        started = time.perf_counter()
        counts, hashed = run(args.object, source)
        seconds.append(time.perf_counter() - started - hashed)
        hashing.append(hashed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    json.dump({"python": platform.python_version(), "seconds": seconds, "hashing_seconds": hashing,
               "max_rss_kib": rss, **counts}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
