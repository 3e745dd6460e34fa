#!/usr/bin/env python3
"""Python baseline for `classify_bench`: the straightforward way to turn a usage log into NDJSON.

Standard library only (csv + re + json), written the way one would without thinking about speed,
but doing the same work as the native path (c) of the benchmark:

- parse the CSV (the documented header skipped), decode text as UTF-8 with replacement, check the
  column count and every number, drop records whose s_request_id was seen before;
- classify each row with regular expressions: registry host and project from the bucket, digest
  from the object, repository and image from a Referer naming the same digest, action (the rules
  of crates/core/src/usage/classify.rs), client family and version, caller class, success;
- serialise one JSON object per row (the fields and order of `RegistryEvent`), into a 4 MiB chunk
  that is encoded and dropped when full (an upload chunk going nowhere).

Usage: classify_baseline.py LOG [--runs N]. Prints one JSON object: per-run seconds and counts.
"""

import argparse
import csv
import datetime
import json
import platform
import re
import resource
import sys
import time

HEADER = [
    "time_micros", "c_ip", "c_ip_type", "c_ip_region", "cs_method", "cs_uri", "sc_status", "cs_bytes",
    "sc_bytes", "time_taken_micros", "cs_host", "cs_referer", "cs_user_agent", "s_request_id",
    "cs_operation", "cs_bucket", "cs_object",
]
CHUNK = 4 << 20
MIN_TIME, MAX_TIME = -62_135_596_800_000_000, 253_402_300_799_999_999
U64_MAX = (1 << 64) - 1

REGISTRY = re.compile(r"^(?:(us|eu|asia)\.)?artifacts\.([a-z0-9-]+)\.appspot\.com$")
REGISTRY_DOMAIN = re.compile(
    r"^(?:(us|eu|asia)\.)?artifacts\.([a-z0-9-]+)\.((?:[a-z0-9-]+\.)+[a-z0-9-]+)\.a\.appspot\.com$")
HOSTS = {None: "gcr.io", "us": "us.gcr.io", "eu": "eu.gcr.io", "asia": "asia.gcr.io"}
BLOB = re.compile(r"^containers/images/(sha256:[0-9a-f]{64})$")
REFERER = re.compile(
    r"^https?://((?:[A-Za-z0-9.-]+\.)?(?i:gcr\.io))/v2/([a-z0-9._-]+(?:/[a-z0-9._-]+)*)"
    r"/blobs/(sha256:[0-9a-f]{64})(?:[?#]|$)")
GFE = re.compile(r"(?:\s*,gzip\(gfe\))+\s*$")
UNSIGNED = re.compile(r"[0-9]+\Z")
SIGNED = re.compile(r"-?[0-9]+\Z")

TOKEN = r"(?:^|[ (),;]){}/([^ (),;]+)"
FAMILIES = [(family, re.compile(TOKEN.format(name), re.I)) for family, name in [
    ("docker", "docker"), ("buildkit", "buildkit"), ("kaniko", "kaniko"), ("crane", "crane"), ("cri-o", "cri-o"),
    ("containerd", "containerd"), ("podman", "(?:podman|libpod)"), ("skopeo", "skopeo"), ("buildah", "buildah"),
    ("go-containerregistry", "go-containerregistry"), ("gcloud", "gcloud"), ("gsutil", "gsutil"),
]]
CONTAINERS = re.compile(TOKEN.format("containers"))
BROWSERS = [re.compile(r"(?:^|[ (),;])(" + name + r"/[^ (),;]+)", re.I)
            for name in ["Edg", "OPR", "Firefox", "Chrome", "Safari", "AppleWebKit"]]
HTTP_CLIENT = re.compile(
    r"(?:^|[ (),;])((?:curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|java|okhttp"
    r"|apache-httpclient|node-fetch|axios)/[^ (),;]+)", re.I)
LEADING_V = re.compile(r"^[vV](?=[0-9])")

READ_OPS = {"GET_Object", "storage.objects.get"}
METADATA_OPS = {"GET_Object_Metadata", "HEAD_Object"}
WRITE_OPS = {"PUT_Object", "POST_Object", "COPY_Object", "COMPOSE_Object", "REWRITE_Object",
             "storage.objects.insert", "storage.objects.compose", "storage.objects.copy", "storage.objects.rewrite"}
DELETE_OPS = {"DELETE_Object", "storage.objects.delete"}
LIST_OPS = {"LIST_Objects", "storage.objects.list"}
PATCH_OPS = {"PATCH_Object", "UPDATE_Object", "storage.objects.patch", "storage.objects.update"}
ADMIN_WORDS = re.compile(r"bucket|acl|iam|accesscontrol|notification|hmac|retention|policy", re.I)
BUCKET_SETTINGS = re.compile(
    r"(?:^|&)(?:acl|billing|cors|encryptionConfig|iam|lifecycle|location|logging|storageClass|tagging"
    r"|versioning|website)(?:=|&|$)")
JSON_LIST = re.compile(r"^/storage/v1/b/.*/o/*$")
CONSOLE = re.compile(r"^https://console\.(?:cloud|developers)\.google\.com/")


def registry(bucket):
    m = REGISTRY.match(bucket)
    if m:
        return HOSTS[m.group(1)], m.group(2)
    m = REGISTRY_DOMAIN.match(bucket)
    if m:
        return HOSTS[m.group(1)], m.group(3) + ":" + m.group(2)
    return None, None


def client(ua):
    if not ua:
        return "none", None
    if ua == "GCS Lifecycle Management":
        return "lifecycle", None
    for family, pattern in FAMILIES:
        m = pattern.search(ua)
        if m:
            return family, LEADING_V.sub("", m.group(1))
    if "(github.com/containers/image)" in ua:
        m = CONTAINERS.search(ua)
        if m:
            return "containers-image", LEADING_V.sub("", m.group(1))
    if ua.startswith("Mozilla/"):
        for pattern in BROWSERS:
            m = pattern.search(ua)
            if m:
                return "browser", m.group(1)
        return "browser", None
    m = HTTP_CLIENT.search(ua)
    if m:
        return "http-client", m.group(1)
    return "other", None


def action(method, operation, uri, target):
    path, _, query = uri.partition("?")
    if method in ("HEAD", "OPTIONS"):
        verb = "other"
    elif operation:
        if operation in READ_OPS:
            verb = "read"
        elif operation in METADATA_OPS:
            verb = "metadata"
        elif operation in WRITE_OPS:
            verb = "write"
        elif operation in DELETE_OPS:
            verb = "delete"
        elif operation in LIST_OPS:
            verb = "list"
        elif operation in PATCH_OPS or ADMIN_WORDS.search(operation):
            verb = "admin"
        else:
            verb = "other"
    elif method == "GET" and target == "bucket":
        if path.startswith("/storage/v1/b/"):
            verb = "list" if JSON_LIST.match(path) else "admin"
        else:
            verb = "admin" if BUCKET_SETTINGS.search(query) else "list"
    elif method == "GET":
        verb = "read"
    elif method in ("PUT", "POST"):
        verb = "write"
    elif method == "DELETE":
        verb = "delete"
    elif method == "PATCH":
        verb = "admin"
    else:
        verb = "other"
    if verb == "read" and (path.startswith("/storage/v1/") or path.startswith("/download/storage/v1/")) \
            and "alt=media" not in query.split("&"):
        return "other"
    if verb == "read":
        return {"blob": "pull", "object": "download"}.get(target, "other")
    if verb == "write":
        return {"blob": "push", "object": "upload"}.get(target, "admin")
    if verb == "delete":
        return "admin" if target == "bucket" else "delete"
    if verb in ("list", "admin"):
        return verb
    return "other"


def caller(family, is_registry, target, act, referer):
    if family == "lifecycle":
        return "google_internal_or_automation"
    if act in ("admin", "list"):
        return "owner_admin"
    if family in ("gcloud", "gsutil") and is_registry:
        return "owner_admin"
    if family == "browser" and CONSOLE.match(referer):
        return "owner_admin"
    if family in ("http-client", "none") and target == "blob":
        return "google_internal_or_automation"
    return "end_user"


def event_time(micros):
    t = datetime.datetime.fromtimestamp(micros // 1_000_000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (micros % 1_000_000)


def number(value, pattern, limit):
    if not pattern.match(value):
        return None
    n = int(value)
    return n if n <= limit else None


def run(path, source):
    counts = {"records": 0, "rows": 0, "malformed": 0, "duplicates": 0, "invalid_utf8": 0, "ndjson_bytes": 0}
    actions = {}
    seen = set()
    parts, size = [], 0
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        first = True
        for rec in reader:
            if first:
                first = False
                if rec == HEADER:
                    continue
            if not rec:
                continue
            counts["records"] += 1
            if len(rec) != 17:
                counts["malformed"] += 1
                continue
            (time_s, c_ip, ip_type_s, _region, method, uri, status_s, cs_bytes_s, sc_bytes_s, taken_s, _host,
             referer, ua, request_id, operation, bucket, obj) = rec
            t = number(time_s, SIGNED, MAX_TIME)
            status = number(status_s, UNSIGNED, 65535)
            cs_bytes = number(cs_bytes_s, UNSIGNED, U64_MAX)
            sc_bytes = number(sc_bytes_s, UNSIGNED, U64_MAX)
            taken = number(taken_s, UNSIGNED, U64_MAX)
            ip_ok = ip_type_s == "" or number(ip_type_s, UNSIGNED, 255) is not None
            if None in (t, status, cs_bytes, sc_bytes, taken) or t < MIN_TIME or not ip_ok:
                counts["malformed"] += 1
                continue
            if request_id:
                if request_id in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(request_id)
            counts["rows"] += 1
            invalid = any("\ufffd" in field for field in rec)
            counts["invalid_utf8"] += invalid

            host, project = registry(bucket)
            m = BLOB.match(obj) if host else None
            digest = m.group(1) if m else None
            target = "bucket" if not obj else "blob" if digest else "object"
            act = action(method, operation, uri, target)
            actions[act] = actions.get(act, 0) + 1
            repository = image = None
            if digest:
                r = REFERER.match(referer)
                if r and r.group(3) == digest:
                    repository = r.group(2)
                    image = r.group(1).lower() + "/" + repository
            ua = GFE.sub("", ua.strip())
            family, version = client(ua)
            event = {
                "event_time": event_time(t),
                "time_micros": t,
                "registry_host": host,
                "project": project,
                "repository": repository,
                "image": image,
                "digest": digest,
                "target": target,
                "action": act,
                "success": 200 <= status < 300 or status == 304,
                "status": status,
                "method": method,
                "operation": operation,
                "bucket": bucket,
                "object": obj or None,
                "client_family": family,
                "client_version": version,
                "user_agent": ua,
                "caller_class": caller(family, host is not None, target, act, referer),
                "client_ip": c_ip,
                "request_bytes": cs_bytes,
                "response_bytes": sc_bytes,
                "time_taken_micros": taken,
                "request_id": request_id,
                "invalid_utf8": invalid,
                "source_bucket": source["bucket"],
                "source_object": source["name"],
                "source_generation": source["generation"],
                "source_row": counts["records"],
                "source_line": reader.line_num,
            }
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
            parts.append(line)
            size += len(line)
            if size >= CHUNK:
                counts["ndjson_bytes"] += len("".join(parts).encode("utf-8"))
                parts, size = [], 0
    if parts:
        counts["ndjson_bytes"] += len("".join(parts).encode("utf-8"))
    counts["actions"] = actions
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    source = {"bucket": "demo-gcr-logs", "name": args.log.rsplit("/", 1)[-1], "generation": 1}
    seconds, counts = [], None
    for _ in range(args.runs):
        started = time.perf_counter()
        counts = run(args.log, source)
        seconds.append(time.perf_counter() - started)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    json.dump({"python": platform.python_version(), "seconds": seconds, "max_rss_kib": rss, **counts}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
