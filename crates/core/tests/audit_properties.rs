//! Properties of the audit-log reader (`gcr_usage_core::audit::AuditLogReader`) on generated
//! Artifact Registry audit entries: every documented method name, images with nested paths
//! (`%2F` in `resourceName`, or only in the request URL), gcr.io and pkg.dev repositories, tags
//! and digests, every gRPC status, redacted and IPv6 caller addresses, principals, user agents
//! with Google's `,gzip(gfe)` suffix and JSON escapes, RFC 3339 timestamps with any fraction and
//! offset, entries of other services and non-audit entries, malformed entries of every kind, and
//! duplicates (same `insertId` and `timestamp`, byte for byte or not).
//!
//! Each generated entry carries its expected verdict (an event and its fields, skipped,
//! malformed with a reason, duplicate), so a read is held to the model, and:
//! - JSON lines (a sink object) and one JSON array (`gcloud logging read --format=json`) of the
//!   same entries give the same events (lineage aside: `source_line` follows the layout);
//! - the counts add up: `entries = events + skipped + malformed + duplicates`;
//! - reading the stream in arbitrary chunks changes nothing;
//! - every event's NDJSON line is serde_json's, byte for byte;
//! - memory is bounded: an entry over 512 KiB is malformed and the next one is still read, and
//!   the heap the reader uses does not grow with the object.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::io::Read;

use gcr_usage_core::ObjectRef;
use gcr_usage_core::audit::framing::{Layout, MAX_ENTRY_BYTES};
use gcr_usage_core::audit::{AuditLogReader, AuditReadError, AuditStats};
use gcr_usage_core::ndjson;
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// A heap counter per thread: what the reader allocates while it reads (the memory property).

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|current| {
        let now = current.get() + delta;
        current.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most heap (bytes) this thread held during it,
/// above what it held before.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}

// ---------------------------------------------------------------------------------------------
// The model: an entry, and what reading it must give.

const AUDIT_LOG: &str = "type.googleapis.com/google.cloud.audit.AuditLog";
const AR: &str = "artifactregistry.googleapis.com";
const RPC: &str = "google.devtools.artifactregistry.v1.ArtifactRegistry.";

/// What a method's entry looks like (its URL and resource) and classifies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `/v2/PATH/manifests/REF`
    Manifest,
    /// `/v2/PATH/blobs/DIGEST`
    Blob,
    /// `/v2/PATH/blobs/uploads/…`
    Upload,
    /// `/v2/PATH/tags/list`
    Tags,
    /// `/v2/_catalog`, and `CreateOnPush`: the repository is not pinned down by the rules.
    Repository,
    /// A non-Docker format (`maven`, `npm`, …).
    Package(&'static str),
    /// An Artifact Registry API call (`google.devtools.artifactregistry.v1.ArtifactRegistry.*`).
    Rpc,
}

struct Method {
    name: &'static str,
    shape: Shape,
    target: &'static str,
    action: &'static str,
    http: &'static str,
}

const fn m(name: &'static str, shape: Shape, target: &'static str, action: &'static str, http: &'static str) -> Method {
    Method { name, shape, target, action, http }
}

/// The documented method names (the reference's list, the three old names, an unknown
/// `Docker-*` name) with the target and action the rules give them.
const METHODS: &[Method] = &[
    m("Docker-GetManifest", Shape::Manifest, "manifest", "pull", "GET"),
    m("Docker-HeadManifest", Shape::Manifest, "manifest", "other", "HEAD"),
    m("Docker-PutManifest", Shape::Manifest, "manifest", "push", "PUT"),
    m("Docker-DeleteManifest", Shape::Manifest, "manifest", "delete", "DELETE"),
    m("Docker-DeleteTag", Shape::Manifest, "manifest", "delete", "DELETE"),
    m("Docker-ListReferrers", Shape::Manifest, "manifest", "other", "GET"),
    m("Docker-ServeBlob", Shape::Blob, "blob", "pull", "GET"),
    m("Docker-EmptyTarBlob", Shape::Blob, "blob", "pull", "GET"),
    m("Docker-HeadBlob", Shape::Blob, "blob", "other", "HEAD"),
    m("Docker-HeadEmptyTarBlob", Shape::Blob, "blob", "other", "HEAD"),
    m("Docker-DeleteBlob", Shape::Blob, "blob", "delete", "DELETE"),
    m("Docker-StartUpload", Shape::Upload, "blob", "other", "POST"),
    m("Docker-CancelUpload", Shape::Upload, "blob", "other", "DELETE"),
    m("Docker-FinishUpload", Shape::Upload, "blob", "push", "PUT"),
    m("Docker-GetTags", Shape::Tags, "repository", "list", "GET"),
    m("Docker-GetEmptyTags", Shape::Tags, "repository", "list", "GET"),
    m("Docker-Catalog", Shape::Repository, "repository", "list", "GET"),
    m("Docker-CreateOnPush", Shape::Repository, "repository", "admin", "POST"),
    m("Maven-Artifact-Download", Shape::Package("maven"), "package", "download", "GET"),
    m("Maven-File-Download", Shape::Package("maven"), "package", "download", "GET"),
    m("Maven-Artifact-Upload", Shape::Package("maven"), "package", "upload", "PUT"),
    m("Npm-InstallPackage", Shape::Package("npm"), "package", "download", "GET"),
    m("Npm-GetManifest", Shape::Package("npm"), "package", "other", "GET"),
    m("Npm-GetVersionManifest", Shape::Package("npm"), "package", "other", "GET"),
    m("Npm-PublishPackage", Shape::Package("npm"), "package", "upload", "PUT"),
    m("Python-InstallPackage", Shape::Package("python"), "package", "download", "GET"),
    m("Python-PackageVersions", Shape::Package("python"), "package", "other", "GET"),
    m("Python-UploadPackage", Shape::Package("python"), "package", "upload", "POST"),
    m("Apt-ViewPackageFile", Shape::Package("apt"), "package", "download", "GET"),
    m("Yum-ViewPackageFile", Shape::Package("yum"), "package", "download", "GET"),
    m("Go-DownloadZipFile", Shape::Package("go"), "package", "download", "GET"),
    m("Go-DownloadModFile", Shape::Package("go"), "package", "download", "GET"),
    m("DownloadFile", Shape::Rpc, "package", "download", ""),
    m("GetRepository", Shape::Rpc, "repository", "other", ""),
    m("ListDockerImages", Shape::Rpc, "repository", "list", ""),
    m("CreateRepository", Shape::Rpc, "repository", "admin", ""),
    m("DeleteRepository", Shape::Rpc, "repository", "admin", ""),
    m("UpdateRepository", Shape::Rpc, "repository", "admin", ""),
    m("SetIamPolicy", Shape::Rpc, "repository", "admin", ""),
    m("BatchDeleteVersions", Shape::Rpc, "repository", "admin", ""),
];

const LOCATIONS: &[&str] = &["europe-west2", "us-central1", "us", "asia-northeast1", "me-central2"];
const GCR_HOSTS: &[&str] = &["gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"];
const IPS: &[&str] = &["198.51.100.23", "203.0.113.50", "2001:db8::1", "private", "gce-internal-ip", "gcp-internal-ip"];
const EMAILS: &[&str] = &[
    "alice@example.com",
    "ci@demo-project.iam.gserviceaccount.com",
    "123456789012-compute@developer.gserviceaccount.com",
    "service-123456789012@container-analysis.iam.gserviceaccount.com",
    "123456789012@cloudbuild.gserviceaccount.com",
    "",
];
const SUBJECTS: &[&str] = &[
    "user:alice@example.com",
    "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gh/subject/repo",
];
/// User agents as written and as the event must carry them.
const AGENTS: &[(&str, &str)] = &[
    (
        "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-21-generic os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)",
        "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-21-generic os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))",
    ),
    ("containerd/v1.7.12,gzip(gfe)", "containerd/v1.7.12"),
    ("crane/0.19.0 go-containerregistry/0.19.0", "crane/0.19.0 go-containerregistry/0.19.0"),
    ("ContainerAnalysis/1.0", "ContainerAnalysis/1.0"),
    ("  npm/10.2.4 node/v20.11.0 linux x64 ,gzip(gfe),gzip(gfe)", "npm/10.2.4 node/v20.11.0 linux x64"),
    ("Mozilla/5.0 \"quoted\" caf\u{e9} \u{1F433}\ttab", "Mozilla/5.0 \"quoted\" caf\u{e9} \u{1F433}\ttab"),
];

/// An RFC 3339 timestamp: `secs` since the epoch, `digits` (0–9) of the nanoseconds, written
/// at `offset` minutes from UTC (`Z` when 0 and not `plus_zero`).
#[derive(Debug, Clone)]
struct Time {
    secs: i64,
    nanos: u32,
    digits: usize,
    offset: i32,
    plus_zero: bool,
}

impl Time {
    fn text(&self) -> String {
        let utc = time::OffsetDateTime::from_unix_timestamp(self.secs).expect("in range");
        let local = utc.to_offset(time::UtcOffset::from_whole_seconds(self.offset * 60).expect("an offset"));
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            local.year(),
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        );
        if self.digits > 0 {
            s.push('.');
            s.push_str(&format!("{:09}", self.nanos)[..self.digits]);
        }
        if self.offset == 0 && !self.plus_zero {
            s.push('Z');
        } else {
            let (sign, abs) = if self.offset < 0 { ('-', -self.offset) } else { ('+', self.offset) };
            s.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
        }
        s
    }

    /// Microseconds since the epoch: the fraction as written, truncated to microseconds.
    fn micros(&self) -> i64 {
        let fraction = format!("{:09}", self.nanos);
        let kept = &fraction[..self.digits.min(6)];
        let micros: i64 = format!("{kept:0<6}").parse().expect("digits");
        self.secs * 1_000_000 + micros
    }
}

#[derive(Debug, Clone)]
enum Reference {
    Tag(String),
    Digest(String),
}

/// A good Artifact Registry entry.
#[derive(Debug, Clone)]
struct Good {
    method: usize,
    project: String,
    location: usize,
    /// `Err(i)`: the gcr.io repository `GCR_HOSTS[i]`.
    repository: Result<String, usize>,
    image: Vec<String>,
    /// The image is named in `resourceName` (`dockerImages/team%2Fapi`), not only in the URL.
    image_in_resource: bool,
    /// 0: none; 1: `@sha256:…`; 2: `:tag` after the image id in `resourceName`.
    image_suffix: u8,
    reference: Reference,
    blob: String,
    /// `None`: no `status`; `Some(None)`: `{}`; `Some(Some(code))`.
    status: Option<Option<i64>>,
    email: Option<usize>,
    subject: Option<usize>,
    ip: Option<usize>,
    agent: Option<usize>,
    request_method: bool,
    id: String,
    time: Time,
}

#[derive(Debug, Clone, Copy)]
enum Bad {
    /// Balanced braces, not JSON (frames in both layouts).
    NotJson,
    /// A JSON array where an entry should be.
    Array,
    Scalar(u8),
    NoInsertId,
    NoTimestamp,
    Timestamp,
    Resource,
    NoMethod,
    InsertIdNumber,
    InvalidUtf8,
    /// An entry cut off mid-line (JSON lines only: it would break an array's framing).
    Truncated(u16),
}

#[derive(Debug, Clone, Copy)]
enum Skip {
    OtherService,
    NoPayload,
    OtherType,
}

#[derive(Debug, Clone)]
enum Kind {
    Event(Good),
    Skipped(Skip, Good),
    Malformed(Bad, Good),
    /// A copy of the `n`th earlier event (modulo their number): byte for byte, or with another
    /// caller address (same `insertId` and `timestamp`: still a duplicate).
    Duplicate {
        n: usize,
        exact: bool,
    },
    /// An earlier event's `insertId` with another timestamp, or its timestamp with another
    /// `insertId`: not a duplicate.
    NearDuplicate {
        n: usize,
        same_id: bool,
    },
}

/// What reading an entry must give.
#[derive(Debug, Clone)]
enum Expect {
    /// The event's fields that the rules pin down.
    Event(Vec<(&'static str, Value)>),
    Skipped,
    /// A substring of the reason.
    Malformed(&'static str),
    Duplicate,
}

/// One entry of the object, rendered.
#[derive(Debug, Clone)]
struct Entry {
    /// The entry's bytes on one line.
    compact: Vec<u8>,
    /// The entry as JSON (to pretty-print it in an array), if it is JSON.
    value: Option<Value>,
    expect: Expect,
}

fn http_status(code: i64) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        2 => 500,
        3 => 400,
        4 => 504,
        5 => 404,
        6 => 409,
        7 => 403,
        8 => 429,
        9 => 400,
        10 => 409,
        11 => 400,
        12 => 501,
        13 => 500,
        14 => 503,
        15 => 500,
        16 => 401,
        _ => 500,
    }
}

impl Good {
    fn method(&self) -> &'static Method {
        &METHODS[self.method]
    }

    fn docker(&self) -> bool {
        !matches!(self.method().shape, Shape::Package(_) | Shape::Rpc)
    }

    fn repository_name(&self) -> &str {
        match &self.repository {
            Ok(name) => name,
            Err(i) => GCR_HOSTS[*i],
        }
    }

    fn gcr(&self) -> bool {
        self.repository.is_err()
    }

    fn reference_text(&self) -> &str {
        match &self.reference {
            Reference::Tag(t) | Reference::Digest(t) => t,
        }
    }

    /// `resourceName` and `request.requestUrl`.
    fn resource_and_url(&self) -> (String, Option<String>) {
        let (p, l, r) = (&self.project, LOCATIONS[self.location], self.repository_name());
        let repo = format!("projects/{p}/locations/{l}/repositories/{r}");
        // The registry path after the host: pkg.dev `P/R/IMAGE`, gcr.io `P/IMAGE`.
        let image = self.image.join("/");
        let path = if self.gcr() { format!("{p}/{image}") } else { format!("{p}/{r}/{image}") };
        let resource_image = || {
            let suffix = match self.image_suffix {
                1 => format!("@{}", self.blob),
                2 => ":latest".to_string(),
                _ => String::new(),
            };
            format!("{repo}/dockerImages/{}{suffix}", self.image.join("%2F"))
        };
        let docker = |url: String| (if self.image_in_resource { resource_image() } else { repo.clone() }, Some(url));
        match self.method().shape {
            Shape::Manifest => docker(format!("/v2/{path}/manifests/{}", self.reference_text())),
            Shape::Blob => docker(format!("/v2/{path}/blobs/{}", self.blob)),
            Shape::Upload if self.method().name == "Docker-StartUpload" => docker(format!("/v2/{path}/blobs/uploads/")),
            Shape::Upload => docker(format!("/v2/{path}/blobs/uploads/6a1d2b3c-4e5f?digest={}", self.blob)),
            Shape::Tags => docker(format!("/v2/{path}/tags/list?n=100")),
            Shape::Repository if self.method().name == "Docker-Catalog" => docker("/v2/_catalog".into()),
            Shape::Repository => docker(format!("/v2/{path}/blobs/uploads/")),
            Shape::Package(_) => (format!("{repo}/packages/{}", self.image.join("%2F")), None),
            Shape::Rpc if self.method().name == "DownloadFile" => (format!("{repo}/files/lib-1.0.tgz"), None),
            Shape::Rpc => (repo, None),
        }
    }

    fn operation(&self) -> String {
        match self.method().shape {
            Shape::Rpc => format!("{RPC}{}", self.method().name),
            _ => self.method().name.to_string(),
        }
    }

    fn value(&self) -> Value {
        let (resource, url) = self.resource_and_url();
        let mut payload = json!({
            "@type": AUDIT_LOG,
            "serviceName": AR,
            "methodName": self.operation(),
            "resourceName": resource,
            "authorizationInfo": [{
                "resource": format!("projects/{}/locations/{}/repositories/{}", self.project, LOCATIONS[self.location], self.repository_name()),
                "permission": "artifactregistry.repositories.downloadArtifacts",
                "granted": true,
                "resourceAttributes": {},
                "permissionType": "DATA_READ"
            }],
            "resourceLocation": {"currentLocations": [LOCATIONS[self.location]], "originalLocations": [LOCATIONS[self.location]]},
        });
        match self.status {
            None => {}
            Some(None) => payload["status"] = json!({}),
            Some(Some(code)) => payload["status"] = json!({"code": code, "message": "refused \"as scripted\""}),
        }
        if self.email.is_some() || self.subject.is_some() {
            let mut auth = json!({});
            if let Some(e) = self.email {
                auth["principalEmail"] = EMAILS[e].into();
            }
            if let Some(s) = self.subject {
                auth["principalSubject"] = SUBJECTS[s].into();
            }
            payload["authenticationInfo"] = auth;
        }
        let mut metadata = json!({"requestAttributes": {}, "destinationAttributes": {}});
        if let Some(ip) = self.ip {
            metadata["callerIp"] = IPS[ip].into();
        }
        if let Some(agent) = self.agent {
            metadata["callerSuppliedUserAgent"] = AGENTS[agent].0.into();
        }
        payload["requestMetadata"] = metadata;
        if url.is_some() || self.request_method {
            let mut request = json!({"@type": "type.googleapis.com/google.logging.type.HttpRequest"});
            if let Some(url) = url {
                request["requestUrl"] = url.into();
            }
            if self.request_method {
                request["requestMethod"] = self.method().http.into();
            }
            payload["request"] = request;
        }
        json!({
            "protoPayload": payload,
            "insertId": self.id,
            "resource": {"type": "audited_resource", "labels": {"project_id": self.project, "method": self.operation(), "service": AR}},
            "timestamp": self.time.text(),
            "severity": "INFO",
            "logName": format!("projects/{}/logs/cloudaudit.googleapis.com%2Fdata_access", self.project),
            "receiveTimestamp": "2024-07-05T00:00:01.000000001Z",
        })
    }

    /// The event fields the rules pin down for this entry.
    fn expect(&self) -> Vec<(&'static str, Value)> {
        let method = self.method();
        let (p, l, r) = (self.project.as_str(), LOCATIONS[self.location], self.repository_name());
        let code = self.status.flatten().unwrap_or(0);
        let agent = self.agent.map_or("", |a| AGENTS[a].1);
        let principal = match (self.email.map(|e| EMAILS[e]).filter(|e| !e.is_empty()), self.subject) {
            (Some(email), _) => Value::from(email),
            (None, Some(s)) => Value::from(SUBJECTS[s]),
            (None, None) => Value::Null,
        };
        let mut fields = vec![
            ("event_time", Value::from(format_micros(self.time.micros()))),
            ("time_micros", Value::from(self.time.micros())),
            ("project", Value::from(p)),
            ("target", Value::from(method.target)),
            ("action", Value::from(method.action)),
            ("success", Value::from(code == 0)),
            ("status", Value::from(http_status(code))),
            ("method", Value::from(if self.request_method { method.http } else { "" })),
            ("operation", Value::from(self.operation())),
            ("bucket", Value::Null),
            ("object", Value::Null),
            ("user_agent", Value::from(agent)),
            ("client_ip", Value::from(self.ip.map_or("", |i| IPS[i]))),
            ("request_bytes", Value::from(0)),
            ("response_bytes", Value::from(0)),
            ("time_taken_micros", Value::from(0)),
            ("request_id", Value::from(self.id.as_str())),
            ("invalid_utf8", Value::from(false)),
            ("source_kind", Value::from("audit_log")),
            ("principal", principal),
        ];
        let image = self.image.join("/");
        match method.shape {
            Shape::Package(format) => {
                let host = format!("{l}-{format}.pkg.dev");
                let repository = format!("{p}/{r}");
                fields.push(("image", Value::from(format!("{host}/{repository}"))));
                fields.push(("registry_host", host.into()));
                fields.push(("repository", repository.into()));
                fields.push(("artifact_format", format.into()));
                fields.push(("reference", Value::Null));
            }
            Shape::Rpc => {
                let format = if method.name == "DownloadFile" { Value::from("generic") } else { Value::Null };
                fields.push(("registry_host", Value::Null));
                fields.push(("image", Value::Null));
                fields.push(("artifact_format", format));
                fields.push(("reference", Value::Null));
            }
            shape => {
                let host = if self.gcr() { r.to_string() } else { format!("{l}-docker.pkg.dev") };
                fields.push(("artifact_format", "docker".into()));
                fields.push(("registry_host", host.clone().into()));
                if shape != Shape::Repository {
                    let repository = if self.gcr() { format!("{p}/{image}") } else { format!("{p}/{r}/{image}") };
                    fields.push(("image", format!("{host}/{repository}").into()));
                    fields.push(("repository", repository.into()));
                }
                let reference = match shape {
                    Shape::Manifest => Some(self.reference_text()),
                    Shape::Blob => Some(self.blob.as_str()),
                    Shape::Tags => None,
                    _ => return fields, // uploads, catalog: not pinned down
                };
                let digest = reference.filter(|r| r.starts_with("sha256:"));
                fields.push(("reference", reference.map_or(Value::Null, Value::from)));
                fields.push(("digest", digest.map_or(Value::Null, Value::from)));
            }
        }
        if !self.docker() {
            fields.push(("digest", Value::Null));
        }
        fields
    }
}

fn format_micros(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000)).expect("in range");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        micros.rem_euclid(1_000_000)
    )
}

fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a value serialises")
}

fn json_entry(value: Value, expect: Expect) -> Entry {
    Entry { compact: compact(&value), value: Some(value), expect }
}

fn raw_entry(text: impl Into<Vec<u8>>, expect: Expect) -> Entry {
    Entry { compact: text.into(), value: None, expect }
}

/// Renders the model: each kind becomes its bytes and its verdict. Insert ids are made
/// unique (a generated id plus the entry's index) so that only intended duplicates collide.
fn resolve(kinds: &[Kind]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut events: Vec<Good> = Vec::new();
    // (insertId, timestamp) of every event: a near duplicate must not hit one by chance.
    let mut keys = std::collections::HashSet::new();
    for (i, kind) in kinds.iter().enumerate() {
        let unique = |g: &Good| Good { id: format!("{}{i:04x}", g.id), ..g.clone() };
        let entry = match kind {
            Kind::Event(g) => {
                let g = unique(g);
                keys.insert((g.id.clone(), g.time.text()));
                events.push(g.clone());
                json_entry(g.value(), Expect::Event(g.expect()))
            }
            Kind::Skipped(skip, g) => {
                let mut v = unique(g).value();
                match skip {
                    Skip::OtherService => {
                        v["protoPayload"]["serviceName"] = "storage.googleapis.com".into();
                        v["protoPayload"]["methodName"] = "storage.objects.get".into();
                        v["protoPayload"]["resourceName"] = "projects/_/buckets/demo-bucket/objects/a.txt".into();
                    }
                    Skip::NoPayload => {
                        let payload = v.as_object_mut().expect("an object").remove("protoPayload");
                        v["jsonPayload"] = payload.expect("a payload");
                    }
                    Skip::OtherType => {
                        v["protoPayload"]["@type"] = "type.googleapis.com/google.cloud.audit.OtherLog".into()
                    }
                }
                json_entry(v, Expect::Skipped)
            }
            Kind::Malformed(bad, g) => {
                let g = unique(g);
                let mut v = g.value();
                let object = v.as_object_mut().expect("an object");
                match bad {
                    Bad::NotJson => raw_entry(
                        format!(r#"{{"insertId":"{}" "timestamp":"{}"}}"#, g.id, g.time.text()),
                        Expect::Malformed("not JSON"),
                    ),
                    Bad::Array => raw_entry(
                        format!(r#"[{{"insertId":"{}"}}, 1, [2, {{"a": "]"}}]]"#, g.id),
                        Expect::Malformed("a JSON array where a LogEntry object was expected"),
                    ),
                    Bad::Scalar(n) => match n % 4 {
                        0 => raw_entry("\"a string, not an entry\"", Expect::Malformed("a JSON string where")),
                        1 => raw_entry("-12.5e3", Expect::Malformed("a JSON number where")),
                        2 => raw_entry("null", Expect::Malformed("a JSON null where")),
                        _ => raw_entry("true", Expect::Malformed("a JSON boolean where")),
                    },
                    Bad::NoInsertId => {
                        object.remove("insertId");
                        json_entry(v, Expect::Malformed("insertId is missing"))
                    }
                    Bad::NoTimestamp => {
                        object.remove("timestamp");
                        json_entry(v, Expect::Malformed("timestamp is missing"))
                    }
                    Bad::Timestamp => {
                        object.insert("timestamp".into(), g.time.text().replacen('T', " ", 1).into());
                        json_entry(v, Expect::Malformed("is not an RFC 3339 time"))
                    }
                    Bad::Resource => {
                        // A Cloud Storage object's name on an Artifact Registry entry, or a
                        // repository without its id: no registry resource at all.
                        let resource = if g.image_in_resource {
                            "projects/_/buckets/demo-bucket/objects/a.txt".to_string()
                        } else {
                            format!("projects/{}/locations/{}/repositories/", g.project, LOCATIONS[g.location])
                        };
                        v["protoPayload"]["resourceName"] = resource.into();
                        json_entry(v, Expect::Malformed("protoPayload.resourceName"))
                    }
                    Bad::NoMethod => {
                        v["protoPayload"].as_object_mut().expect("an object").remove("methodName");
                        json_entry(v, Expect::Malformed("protoPayload.methodName is missing"))
                    }
                    Bad::InsertIdNumber => {
                        object.insert("insertId".into(), 1234.into());
                        json_entry(v, Expect::Malformed("insertId is a JSON number where a string was expected"))
                    }
                    Bad::InvalidUtf8 => {
                        let text = compact(&v);
                        let at = find(&text, g.id.as_bytes()).expect("the id is in the text") + 1;
                        let mut bytes = text[..at].to_vec();
                        bytes.push(0xFF);
                        bytes.extend_from_slice(&text[at..]);
                        raw_entry(bytes, Expect::Malformed("UTF-8"))
                    }
                    Bad::Truncated(at) => {
                        let text = compact(&v);
                        let cut = 1 + usize::from(*at) % (text.len() - 1);
                        // Cut inside a multi-byte character (the user agents have some), the
                        // line is not even UTF-8 any more.
                        let reason = if std::str::from_utf8(&text[..cut]).is_ok() { "not JSON" } else { "UTF-8" };
                        raw_entry(&text[..cut], Expect::Malformed(reason))
                    }
                }
            }
            Kind::Duplicate { n, exact } => match events.get(n.checked_rem(events.len()).unwrap_or(0)) {
                Some(original) => {
                    let mut copy = original.clone();
                    if !exact {
                        copy.ip = Some(copy.ip.map_or(0, |ip| (ip + 1) % IPS.len()));
                        copy.agent = None;
                    }
                    json_entry(copy.value(), Expect::Duplicate)
                }
                None => json_entry(json!({"textPayload": "no event yet", "insertId": "t"}), Expect::Skipped),
            },
            Kind::NearDuplicate { n, same_id } => match events.get(n.checked_rem(events.len()).unwrap_or(0)) {
                Some(original) => {
                    let mut near = original.clone();
                    while keys.contains(&(near.id.clone(), near.time.text())) {
                        if *same_id {
                            near.time.secs += 1;
                        } else {
                            near.id.push('x');
                        }
                    }
                    keys.insert((near.id.clone(), near.time.text()));
                    events.push(near.clone());
                    json_entry(near.value(), Expect::Event(near.expect()))
                }
                None => json_entry(json!({"textPayload": "no event yet", "insertId": "t"}), Expect::Skipped),
            },
        };
        out.push(entry);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn time_strategy() -> impl Strategy<Value = Time> {
    // 2024, with any fraction (0–9 digits) and offsets up to ±14 h.
    (
        1_704_067_200i64..1_735_689_600,
        0u32..1_000_000_000,
        0usize..=9,
        prop_oneof![3 => Just(0), 1 => -840i32..=840],
        any::<bool>(),
    )
        .prop_map(|(secs, nanos, digits, offset, plus_zero)| Time { secs, nanos, digits, offset, plus_zero })
}

fn good() -> impl Strategy<Value = Good> {
    let what = (
        0..METHODS.len(),
        "[a-z][a-z0-9-]{3,12}[a-z0-9]",
        0..LOCATIONS.len(),
        prop_oneof![3 => "[a-z][a-z0-9-]{0,10}".prop_map(Ok), 1 => (0..GCR_HOSTS.len()).prop_map(Err)],
        // Path segments, now and then one named like a part of the registry API's URLs.
        proptest::collection::vec(
            prop_oneof![
                9 => "[a-z0-9]([a-z0-9._-]{0,6}[a-z0-9])?",
                1 => prop_oneof![Just("manifests"), Just("blobs"), Just("tags"), Just("uploads"), Just("list"), Just("v2")]
                    .prop_map(String::from),
            ],
            1..=4,
        ),
        any::<bool>(),
        0u8..3,
        prop_oneof![
            3 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}".prop_map(Reference::Tag),
            1 => prop_oneof![Just("latest"), Just("uploads"), Just("list"), Just("blobs")].prop_map(|t| Reference::Tag(t.into())),
            3 => "sha256:[0-9a-f]{64}".prop_map(Reference::Digest),
        ],
        "sha256:[0-9a-f]{64}",
    );
    let who = (
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(None)),
            4 => Just(Some(Some(0))),
            3 => prop_oneof![1i64..=16, Just(42), Just(-1)].prop_map(|c| Some(Some(c))),
        ],
        proptest::option::of(0..EMAILS.len()),
        proptest::option::of(0..SUBJECTS.len()),
        proptest::option::weighted(0.9, 0..IPS.len()),
        proptest::option::weighted(0.9, 0..AGENTS.len()),
        any::<bool>(),
        "[a-z0-9]{8,12}",
        time_strategy(),
    );
    (what, who).prop_map(
        |(
            (method, project, location, repository, image, image_in_resource, image_suffix, reference, blob),
            (status, email, subject, ip, agent, request_method, id, time),
        )| Good {
            method,
            project,
            location,
            repository,
            image,
            image_in_resource,
            image_suffix,
            reference,
            blob,
            status,
            email,
            subject,
            ip,
            agent,
            request_method,
            id,
            time,
        },
    )
}

fn bad(truncated: bool) -> impl Strategy<Value = Bad> {
    let max = if truncated { 11 } else { 10 };
    (0..max, any::<u16>()).prop_map(|(k, n)| match k {
        0 => Bad::NotJson,
        1 => Bad::Array,
        2 => Bad::Scalar(n as u8),
        3 => Bad::NoInsertId,
        4 => Bad::NoTimestamp,
        5 => Bad::Timestamp,
        6 => Bad::Resource,
        7 => Bad::NoMethod,
        8 => Bad::InsertIdNumber,
        9 => Bad::InvalidUtf8,
        _ => Bad::Truncated(n),
    })
}

fn kind(truncated: bool) -> impl Strategy<Value = Kind> {
    prop_oneof![
        12 => good().prop_map(Kind::Event),
        2 => (prop_oneof![Just(Skip::OtherService), Just(Skip::NoPayload), Just(Skip::OtherType)], good())
            .prop_map(|(s, g)| Kind::Skipped(s, g)),
        3 => (bad(truncated), good()).prop_map(|(b, g)| Kind::Malformed(b, g)),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(n, exact)| Kind::Duplicate { n, exact }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(n, same_id)| Kind::NearDuplicate { n, same_id }),
    ]
}

/// Entries of one object. A stream whose first entry starts with `[` is an array, whatever
/// follows, so the first entry is never the array kind (as a real sink object's never is).
fn kinds(truncated: bool) -> impl Strategy<Value = Vec<Kind>> {
    proptest::collection::vec(kind(truncated), 0..40).prop_map(|mut kinds| {
        if let Some(Kind::Malformed(bad @ Bad::Array, _)) = kinds.first_mut() {
            *bad = Bad::NotJson;
        }
        kinds
    })
}

/// How the bytes are laid out around the entries: a byte-order mark, blank lines, CRLF, a
/// missing last newline; in an array, pretty-printed elements and separators.
#[derive(Debug, Clone)]
struct Style {
    bom: bool,
    /// Per entry: blank lines before it (0–2) and whether its line ends in CRLF.
    blank: Vec<(u8, bool)>,
    last_newline: bool,
    pretty: Vec<bool>,
    separator: usize,
}

fn style() -> impl Strategy<Value = Style> {
    (
        proptest::bool::weighted(0.2),
        proptest::collection::vec((prop_oneof![6 => Just(0u8), 1 => 1u8..=2], proptest::bool::weighted(0.2)), 40),
        any::<bool>(),
        proptest::collection::vec(proptest::bool::weighted(0.3), 40),
        0usize..4,
    )
        .prop_map(|(bom, blank, last_newline, pretty, separator)| Style {
            bom,
            blank,
            last_newline,
            pretty,
            separator,
        })
}

/// Chunk sizes of successive reads (cycled).
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    // Tiny reads put every boundary (a line end, a multi-byte character, an escape) at a read's edge.
    proptest::collection::vec(prop_oneof![2 => 1usize..8, 3 => 8usize..400, 3 => 400usize..8000], 1..6)
}

// ---------------------------------------------------------------------------------------------
// Layouts and reading

/// The entries as JSON lines; returns the bytes and each entry's (1-based) physical line.
fn as_lines(entries: &[Entry], style: &Style) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    if style.bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let mut lines = Vec::new();
    let mut line = 1u64;
    for (i, entry) in entries.iter().enumerate() {
        let (blank, crlf) = style.blank[i % style.blank.len()];
        for b in 0..blank {
            out.extend_from_slice(if b % 2 == 0 { b"\n" } else { b" \t\r\n" });
            line += 1;
        }
        lines.push(line);
        out.extend_from_slice(&entry.compact);
        if i + 1 < entries.len() || style.last_newline {
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            line += 1;
        }
    }
    (out, lines)
}

/// The entries as one JSON array, some elements pretty-printed (as gcloud prints them).
fn as_array(entries: &[Entry], style: &Style) -> Vec<u8> {
    let mut out = Vec::new();
    if style.bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    out.extend_from_slice(if style.separator.is_multiple_of(2) { b"[\n  " } else { b"[" });
    let separator: &[u8] = [b",\n  ".as_slice(), b",", b"\n, ", b" ,\r\n"][style.separator];
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator);
        }
        match &entry.value {
            Some(value) if style.pretty[i % style.pretty.len()] => {
                out.extend_from_slice(serde_json::to_string_pretty(value).expect("serialises").as_bytes())
            }
            _ => out.extend_from_slice(&entry.compact),
        }
    }
    out.extend_from_slice(if style.separator < 2 { b"\n]\n" } else { b"]" });
    out
}

/// A reader handing out `sizes[i % len]` bytes at the i-th call.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    call: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.call % self.sizes.len()].max(1);
        self.call += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn source() -> ObjectRef {
    ObjectRef {
        bucket: "demo-audit-logs".into(),
        name: "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json".into(),
        generation: Some(1_720_137_600_000_000),
    }
}

/// The duplicate window the classified load uses.
const WINDOW: usize = 16_384;

#[derive(Debug, PartialEq)]
struct Got {
    events: Vec<Value>,
    stats: AuditStats,
    layout: Option<Layout>,
    /// The error that ended the read: (a `BrokenArray`?, its message).
    broken: Option<(bool, String)>,
}

/// Reads the whole stream; every event's NDJSON line must be serde_json's, byte for byte.
fn read<R: Read>(input: R, window: usize) -> Got {
    let mut reader = AuditLogReader::new(input, source(), window, usize::MAX);
    let mut events = Vec::new();
    let mut line = Vec::new();
    let broken = loop {
        let next = reader.next_event(|event| {
            line.clear();
            ndjson::write_line(event, &mut line);
            let mut serde = serde_json::to_vec(event).expect("an event serialises");
            serde.push(b'\n');
            assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&serde));
            assert_eq!(line, serde);
            let value: Value = serde_json::from_slice(&line).expect("an NDJSON line is JSON");
            assert_eq!(value, serde_json::to_value(event).expect("an event is a JSON value"));
            value
        });
        match next {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break None,
            Err(AuditReadError::Io(e)) => panic!("an in-memory read failed: {e}"),
            Err(e) => break Some((matches!(e, AuditReadError::BrokenArray(_)), e.to_string())),
        }
    };
    let layout = reader.layout();
    let (_, stats) = reader.into_parts();
    Got { events, stats, layout, broken }
}

/// Holds a read to the model; `lines`: each entry's physical line, where the layout makes it known.
fn check(entries: &[Entry], got: &Got, lines: Option<&[u64]>) -> Result<(), TestCaseError> {
    let s = &got.stats;
    // An object of which no entry is one (every line malformed) may be refused whole; nothing
    // else ends a read of these layouts early.
    let all_malformed = !entries.is_empty() && entries.iter().all(|e| matches!(e.expect, Expect::Malformed(_)));
    match &got.broken {
        None => {}
        Some((false, _)) if all_malformed => {}
        Some(broken) => prop_assert!(false, "the read ended with {:?}", broken),
    }
    let count = |f: fn(&Expect) -> bool| entries.iter().filter(|e| f(&e.expect)).count() as u64;
    let want = (
        entries.len() as u64,
        count(|e| matches!(e, Expect::Event(_))),
        count(|e| matches!(e, Expect::Skipped)),
        count(|e| matches!(e, Expect::Malformed(_))),
        count(|e| matches!(e, Expect::Duplicate)),
    );
    prop_assert_eq!((s.entries, s.events, s.skipped, s.malformed, s.duplicates), want);
    prop_assert_eq!(s.entries, s.events + s.skipped + s.malformed + s.duplicates);
    prop_assert_eq!(s.events, got.events.len() as u64);
    prop_assert_eq!(s.malformed_samples.len() as u64, s.malformed);

    let mut events = got.events.iter();
    let mut samples = s.malformed_samples.iter();
    let mut last_line = 0;
    for (i, entry) in entries.iter().enumerate() {
        let row = i as u64 + 1;
        match &entry.expect {
            Expect::Event(fields) => {
                let event = events.next().expect("counted above");
                prop_assert_eq!(&event["source_row"], &Value::from(row));
                if let Some(lines) = lines {
                    prop_assert_eq!(&event["source_line"], &Value::from(lines[i]));
                }
                let line = event["source_line"].as_u64().expect("a line");
                prop_assert!(line >= last_line.max(1), "line {} after {}", line, last_line);
                last_line = line;
                prop_assert_eq!(&event["source_bucket"], "demo-audit-logs");
                for (field, want) in fields {
                    prop_assert_eq!(&event[*field], want, "{} of entry {}: {}", field, row, event);
                }
            }
            Expect::Malformed(reason) => {
                let sample = samples.next().expect("every sample is kept");
                prop_assert_eq!(sample.row, row);
                if let Some(lines) = lines {
                    prop_assert_eq!(sample.line, lines[i]);
                }
                let text = sample.reason.to_string();
                prop_assert!(text.contains(reason), "entry {}: {:?} does not say {:?}", row, text, reason);
            }
            Expect::Skipped | Expect::Duplicate => {}
        }
    }
    Ok(())
}

/// Events without `source_line`, the one field that follows the layout.
fn without_lines(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().expect("an object").remove("source_line");
            e
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// JSON lines and one JSON array of the same entries, each read whole and in chunks:
    /// four reads, one result (lines aside), and the model's.
    #[test]
    fn both_layouts_and_any_chunking_give_the_modelled_events(
        kinds in kinds(false),
        style in style(),
        sizes in chunks(),
    ) {
        let entries = resolve(&kinds);
        let (lines_bytes, lines) = as_lines(&entries, &style);
        let from_lines = read(lines_bytes.as_slice(), WINDOW);
        check(&entries, &from_lines, Some(&lines))?;
        let chunked = read(Chunked { data: &lines_bytes, sizes: &sizes, call: 0 }, WINDOW);
        prop_assert_eq!(&chunked, &from_lines);

        let array_bytes = as_array(&entries, &style);
        let from_array = read(array_bytes.as_slice(), WINDOW);
        prop_assert_eq!(from_array.layout, Some(Layout::JsonArray));
        check(&entries, &from_array, None)?;
        let chunked = read(Chunked { data: &array_bytes, sizes: &sizes, call: 0 }, WINDOW);
        prop_assert_eq!(&chunked, &from_array);

        prop_assert_eq!(without_lines(&from_array.events), without_lines(&from_lines.events));
        let reasons = |r: &Got| r.stats.malformed_samples.iter().map(|m| (m.row, m.reason.clone())).collect::<Vec<_>>();
        prop_assert_eq!(reasons(&from_array), reasons(&from_lines));
        if !entries.is_empty() {
            prop_assert_eq!(from_lines.layout, Some(Layout::JsonLines));
        }
    }

    /// JSON lines with entries cut off mid-line too (a sink object damaged in transit): the
    /// damage is counted where it is, and reading goes on with the next line.
    #[test]
    fn damaged_json_lines_read_as_modelled(kinds in kinds(true), style in style(), sizes in chunks()) {
        let entries = resolve(&kinds);
        let (bytes, lines) = as_lines(&entries, &style);
        let whole = read(bytes.as_slice(), WINDOW);
        check(&entries, &whole, Some(&lines))?;
        prop_assert_eq!(read(Chunked { data: &bytes, sizes: &sizes, call: 0 }, WINDOW), whole);
    }

    /// A window of `window` events: a copy is dropped exactly when its original is among the
    /// last `window` events; a wider window never finds fewer duplicates.
    #[test]
    fn a_window_drops_the_copies_it_still_holds(kinds in kinds(false), window in 1usize..6) {
        let entries = resolve(&kinds);
        let (bytes, _) = as_lines(&entries, &Style { bom: false, blank: vec![(0, false)], last_newline: true, pretty: vec![false], separator: 0 });
        let narrow = read(bytes.as_slice(), window);
        let wide = read(bytes.as_slice(), WINDOW);
        let (n, w) = (&narrow.stats, &wide.stats);
        prop_assert_eq!((n.entries, n.skipped, n.malformed), (w.entries, w.skipped, w.malformed));
        prop_assert_eq!(n.events + n.duplicates, w.events + w.duplicates);
        prop_assert!(n.duplicates <= w.duplicates);
        // The model, replayed: keys of the last `window` events.
        let mut recent: std::collections::VecDeque<(String, String)> = Default::default();
        let mut duplicates = 0;
        for entry in &entries {
            let Some(v) = &entry.value else { continue };
            if !matches!(entry.expect, Expect::Event(_) | Expect::Duplicate) {
                continue;
            }
            let key = (v["insertId"].as_str().unwrap_or_default().to_string(), v["timestamp"].as_str().unwrap_or_default().to_string());
            if recent.contains(&key) {
                duplicates += 1;
                continue;
            }
            recent.push_back(key);
            if recent.len() > window {
                recent.pop_front();
            }
        }
        prop_assert_eq!(n.duplicates, duplicates);
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded memory

/// A good entry padded to `len` bytes exactly (compact, one line).
fn padded(good: &Good, len: usize) -> Vec<u8> {
    let mut v = good.value();
    v["padding"] = "".into();
    let base = compact(&v).len();
    assert!(len >= base, "{len} < {base}");
    v["padding"] = "x".repeat(len - base).into();
    let text = compact(&v);
    assert_eq!(text.len(), len);
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// An entry over 512 KiB (Cloud Logging's limit) is one malformed entry, in either layout,
    /// however the stream is chunked; the entries around it are read as usual.
    #[test]
    fn an_overlong_entry_is_malformed_and_the_next_is_read(
        before in proptest::collection::vec(good(), 0..3),
        big in good(),
        extra in prop_oneof![Just(1usize), 1usize..200_000],
        after in proptest::collection::vec(good(), 1..3),
        sizes in chunks(),
        array in any::<bool>(),
    ) {
        let kinds: Vec<Kind> = before.iter().cloned().map(Kind::Event)
            .chain([Kind::Event(big.clone())])
            .chain(after.iter().cloned().map(Kind::Event))
            .collect();
        let mut entries = resolve(&kinds);
        let at = before.len();
        let big = unique_id(&big, at);
        entries[at] = raw_entry(padded(&big, MAX_ENTRY_BYTES + extra), Expect::Malformed("longer than 512 KiB"));
        let style = Style { bom: false, blank: vec![(0, false)], last_newline: true, pretty: vec![false], separator: 1 };
        let (bytes, lines) = if array { (as_array(&entries, &style), None) } else { let (b, l) = as_lines(&entries, &style); (b, Some(l)) };
        let whole = read(bytes.as_slice(), WINDOW);
        check(&entries, &whole, lines.as_deref())?;
        prop_assert_eq!(read(Chunked { data: &bytes, sizes: &sizes, call: 0 }, WINDOW), whole);
    }
}

fn unique_id(g: &Good, i: usize) -> Good {
    Good { id: format!("{}{i:04x}", g.id), ..g.clone() }
}

fn sample_good() -> Good {
    Good {
        method: 0,
        project: "demo-project".into(),
        location: 0,
        repository: Ok("apps".into()),
        image: vec!["team".into(), "api".into()],
        image_in_resource: true,
        image_suffix: 0,
        reference: Reference::Tag("v1.2.0".into()),
        blob: format!("sha256:{}", "ab".repeat(32)),
        status: Some(None),
        email: Some(0),
        subject: Some(0),
        ip: Some(0),
        agent: Some(0),
        request_method: true,
        id: "1rtjfyxd1d41".into(),
        time: Time { secs: 1_720_137_015, nanos: 79_183_701, digits: 9, offset: 0, plus_zero: false },
    }
}

/// Exactly 512 KiB is an entry; one byte more is not (when nothing but the newline or the
/// array's `,` / `]` follows it).
#[test]
fn the_entry_limit_is_exactly_512_kib_in_both_layouts() {
    for array in [false, true] {
        for (len, ok) in [(MAX_ENTRY_BYTES - 1, true), (MAX_ENTRY_BYTES, true), (MAX_ENTRY_BYTES + 1, false)] {
            let first = padded(&unique_id(&sample_good(), 0), len);
            let next = compact(&unique_id(&sample_good(), 1).value());
            let bytes = if array {
                [b"[".as_slice(), &first, b",", &next, b"]"].concat()
            } else {
                [first.as_slice(), b"\n", &next, b"\n"].concat()
            };
            let got = read(bytes.as_slice(), WINDOW);
            let s = &got.stats;
            assert_eq!(
                (s.entries, s.events, s.malformed),
                (2, if ok { 2 } else { 1 }, if ok { 0 } else { 1 }),
                "{len} bytes, array {array}"
            );
            assert_eq!(got.events.last().expect("the next entry is read")["request_id"], "1rtjfyxd1d410001");
        }
    }
}

/// A stream of audit entries made on the fly (never held whole): `entries` sample entries
/// with distinct ids, and every `big_every`-th one replaced by a line of `big` bytes.
struct Generated {
    next: usize,
    entries: usize,
    big_every: usize,
    big: usize,
    array: bool,
    pending: Vec<u8>,
    offset: usize,
    /// Bytes of the big line still to hand out (never buffered).
    padding_left: usize,
    template: Vec<u8>,
}

impl Generated {
    fn new(entries: usize, big_every: usize, big: usize, array: bool) -> Self {
        let template = compact(&sample_good().value());
        Generated { next: 0, entries, big_every, big, array, pending: Vec::new(), offset: 0, padding_left: 0, template }
    }

    /// Prepares the next piece into `pending`; `false` at the end.
    fn refill(&mut self) -> bool {
        self.pending.clear();
        self.offset = 0;
        if self.next > self.entries {
            return false;
        }
        let i = self.next;
        self.next += 1;
        if i == 0 {
            if self.array {
                self.pending.push(b'[');
            }
            return true;
        }
        let separator: &[u8] = if self.array && i > 1 { b",\n" } else { b"" };
        self.pending.extend_from_slice(separator);
        if i.is_multiple_of(self.big_every) {
            self.pending.extend_from_slice(b"{\"padding\":\"");
            self.padding_left = self.big;
        } else {
            // The sample entry with its insert id made unique.
            let id = b"1rtjfyxd1d41";
            let at = find(&self.template, id).expect("the id") + id.len();
            self.pending.extend_from_slice(&self.template[..at]);
            self.pending.extend_from_slice(format!("{i:08x}").as_bytes());
            self.pending.extend_from_slice(&self.template[at..]);
            if !self.array {
                self.pending.push(b'\n');
            }
        }
        if i == self.entries && self.array && self.padding_left == 0 {
            self.pending.extend_from_slice(b"]\n");
        }
        true
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.offset < self.pending.len() {
                let n = (self.pending.len() - self.offset).min(buf.len());
                buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
                self.offset += n;
                return Ok(n);
            }
            if self.padding_left > 0 {
                let n = self.padding_left.min(buf.len());
                buf[..n].fill(b'x');
                self.padding_left -= n;
                if self.padding_left == 0 {
                    self.pending.clear();
                    self.offset = 0;
                    self.pending.extend_from_slice(if self.array { b"\"}" } else { b"\"}\n" });
                    if self.next > self.entries && self.array {
                        self.pending.extend_from_slice(b"]\n");
                    }
                }
                return Ok(n);
            }
            if !self.refill() {
                return Ok(0);
            }
        }
    }
}

/// What the reader holds does not grow with the object: reading 10× more entries (and 10×
/// more multi-MiB lines) takes the same heap, a little over one entry's limit plus the read
/// buffer and the duplicate window.
#[test]
fn memory_stays_flat_whatever_the_size_of_the_object() {
    const BIG: usize = 3 << 20; // a 3 MiB line: six times the limit, never buffered
    for array in [false, true] {
        let mut peaks = Vec::new();
        for entries in [2_000usize, 20_000] {
            let stream = Generated::new(entries, 1_000, BIG, array);
            let ((stats, pieces), peak) = peak_heap(|| {
                let mut reader = AuditLogReader::new(stream, source(), 1_024, 5);
                let mut line = Vec::with_capacity(4096);
                while reader.next_event(|e| ndjson::write_line(e, &mut line)).expect("reads").is_some() {
                    line.clear();
                }
                let (stream, stats) = reader.into_parts();
                (stats, stream.next)
            });
            let bigs = (entries / 1_000) as u64;
            assert_eq!(pieces, entries + 1);
            assert_eq!(
                (stats.entries, stats.events, stats.malformed, stats.duplicates, stats.skipped),
                (entries as u64, entries as u64 - bigs, bigs, 0, 0),
                "array {array}"
            );
            peaks.push(peak);
        }
        let (small, large) = (peaks[0], peaks[1]);
        // One entry (at most 512 KiB, its buffer at most twice that), the 64 KiB read buffer,
        // the parsed entry, 1,024 remembered hashes, 5 samples.
        assert!(large < 2 << 20, "array {array}: {large} bytes of heap for 20,000 entries");
        assert!(large.abs_diff(small) < 64 << 10, "array {array}: {small} bytes for 2,000 entries, {large} for 20,000");
    }
}
