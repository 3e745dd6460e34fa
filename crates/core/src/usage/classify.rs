//! One usage-log row → one [`RegistryEvent`]. Pure and total: every row classifies.
//!
//! **Target**: empty `cs_object` → `bucket`; a `containers/images/sha256:<hex>` object in a
//! registry bucket → `blob`; anything else → `object`.
//!
//! **Action**, first matching rule:
//! 1. `HEAD` or `OPTIONS` → `other` (no content moves, whatever the operation says);
//! 2. a known operation decides the verb — read `GET_Object`/`storage.objects.get`, metadata
//!    `GET_Object_Metadata`/`HEAD_Object`, write `PUT_`/`POST_`/`COPY_`/`COMPOSE_`/`REWRITE_Object`
//!    and their `storage.objects.*` names, delete `DELETE_Object`/`storage.objects.delete`,
//!    list `LIST_Objects`/`storage.objects.list`;
//! 3. an unknown operation naming bucket settings, ACLs, IAM, notifications, HMAC keys,
//!    retention or policies, or an object `PATCH`/`UPDATE` → `admin`; any other unknown
//!    operation → `other` (never counted as a download on a guess);
//! 4. an empty operation: the method decides (GET read, PUT/POST write, DELETE delete, PATCH
//!    admin); a GET of the bucket lists (`/storage/v1/b/B/o`, or an XML bucket GET without a
//!    settings sub-resource such as `?acl`) or else is `admin`;
//! 5. a JSON-API read without `alt=media` returns metadata, not content → `other`;
//! 6. verb × target: read → `pull` (blob) / `download` (object); write → `push` / `upload`,
//!    or `admin` on the bucket; delete → `delete`, or `admin` on the bucket.
//!
//! **Success**: status 2xx, or 304 (the client's cached copy is current).
//!
//! **Repository**: only for a blob, from a Referer `https://*gcr.io/v2/REPO/blobs/DIGEST` whose
//! digest is the object's (Go clients send the redirecting URL; a Referer naming another blob
//! is not this request's redirect and attributes nothing).
//!
//! **Caller class** — heuristics, not facts (usage logs carry no identity), first match:
//! 1. `GCS Lifecycle Management` → `google_internal_or_automation`;
//! 2. action `admin` or `list` → `owner_admin` (registry clients never list or configure);
//! 3. gcloud / gsutil on a registry bucket → `owner_admin` (no registry client uses them; on
//!    other buckets they are how anyone downloads, so they stay `end_user` there);
//! 4. a browser sent from the Cloud Console → `owner_admin`;
//! 5. a registry blob fetched by a general HTTP tool or with no user agent →
//!    `google_internal_or_automation` (scripts, scanners, housekeeping: not a registry client);
//! 6. otherwise `end_user`. Google-internal fetches that present a registry client's agent, or
//!    that come from Google addresses, are not recognised (no address list is applied).

use super::registry::{blob_digest, parse_blob_referer, registry_bucket};
use super::row::UsageRow;
use super::user_agent::{ClientFamily, ClientMemo, strip_gfe};
use crate::object::ObjectRef;
use crate::registry_event::{
    Action, ArtifactFormat, CallerClass, EventTime, ImageRef, RegistryEvent, SourceKind, Target,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Read,
    Metadata,
    Write,
    Delete,
    List,
    Admin,
    Other,
}

/// Classifies `row`, read from the log object `source`.
pub fn classify<'a>(row: &'a UsageRow<'_>, source: &'a ObjectRef) -> RegistryEvent<'a> {
    classify_with(row, source, &mut ClientMemo::default())
}

/// [`classify`] for one of a run of rows (a reader's): `clients` remembers the last user agent
/// parsed, which the next row usually repeats. The answer is [`classify`]'s.
pub fn classify_with<'a>(row: &'a UsageRow<'_>, source: &'a ObjectRef, clients: &mut ClientMemo) -> RegistryEvent<'a> {
    let registry = registry_bucket(&row.cs_bucket);
    let digest = registry.as_ref().and_then(|_| blob_digest(&row.cs_object));
    let target = match (row.cs_object.is_empty(), digest) {
        (true, _) => Target::Bucket,
        (false, Some(_)) => Target::Blob,
        (false, None) => Target::Object,
    };
    let action = action(row, target);
    let referer = digest.and_then(|d| parse_blob_referer(&row.cs_referer).filter(|r| r.digest == d));
    let user_agent = strip_gfe(&row.cs_user_agent);
    let client = clients.parse(user_agent);
    let caller_class = caller_class(row, registry.is_some(), target, action, client.family);
    let (host, project) = registry.map(|r| (r.host, r.project)).unzip();
    RegistryEvent {
        event_time: EventTime(row.time_micros),
        time_micros: row.time_micros,
        registry_host: host,
        project,
        repository: referer.map(|r| r.repository),
        image: referer.map(|r| ImageRef { host: r.host, repository: r.repository }),
        digest,
        target,
        action,
        success: (200..300).contains(&row.sc_status) || row.sc_status == 304,
        status: row.sc_status,
        method: &row.cs_method,
        operation: &row.cs_operation,
        bucket: Some(&row.cs_bucket),
        object: (!row.cs_object.is_empty()).then_some(&*row.cs_object),
        client_family: client.family,
        client_version: client.version,
        user_agent,
        caller_class,
        client_ip: &row.c_ip,
        request_bytes: row.cs_bytes,
        response_bytes: row.sc_bytes,
        time_taken_micros: row.time_taken_micros,
        request_id: &row.s_request_id,
        invalid_utf8: row.invalid_utf8,
        source_bucket: &source.bucket,
        source_object: &source.name,
        source_generation: source.generation,
        source_row: row.row,
        source_line: row.line,
        source_kind: SourceKind::UsageLog,
        principal: None,
        artifact_format: host.map(|_| ArtifactFormat::Docker),
        reference: None,
    }
}

fn action(row: &UsageRow<'_>, target: Target) -> Action {
    let method = &*row.cs_method;
    // Methods are case-sensitive (RFC 9110): `get` is not GET and falls to `other`.
    let (path, query) = split_uri(&row.cs_uri);
    let verb = if method == "HEAD" || method == "OPTIONS" {
        Verb::Other
    } else if row.cs_operation.is_empty() {
        verb_from_method(method, target, path, query)
    } else {
        verb_from_operation(&row.cs_operation)
    };
    let json_metadata_read = verb == Verb::Read
        && (path.starts_with("/storage/v1/") || path.starts_with("/download/storage/v1/"))
        && !query.split('&').any(|p| p == "alt=media");
    match (verb, target) {
        (Verb::Read, _) if json_metadata_read => Action::Other,
        (Verb::Read, Target::Blob) => Action::Pull,
        (Verb::Read, Target::Object) => Action::Download,
        (Verb::Write, Target::Blob) => Action::Push,
        (Verb::Write, Target::Object | Target::Package) => Action::Upload,
        (Verb::Write, Target::Manifest | Target::Repository) => Action::Push,
        (Verb::Write | Verb::Delete | Verb::Admin, Target::Bucket) => Action::Admin,
        (Verb::Delete, _) => Action::Delete,
        (Verb::List, _) => Action::List,
        (Verb::Admin, _) => Action::Admin,
        (Verb::Read | Verb::Metadata | Verb::Other, _) => Action::Other,
    }
}

fn verb_from_operation(op: &str) -> Verb {
    match op {
        "GET_Object" | "storage.objects.get" => Verb::Read,
        "GET_Object_Metadata" | "HEAD_Object" => Verb::Metadata,
        "PUT_Object"
        | "POST_Object"
        | "COPY_Object"
        | "COMPOSE_Object"
        | "REWRITE_Object"
        | "storage.objects.insert"
        | "storage.objects.compose"
        | "storage.objects.copy"
        | "storage.objects.rewrite" => Verb::Write,
        "DELETE_Object" | "storage.objects.delete" => Verb::Delete,
        "LIST_Objects" | "storage.objects.list" => Verb::List,
        "PATCH_Object" | "UPDATE_Object" | "storage.objects.patch" | "storage.objects.update" => Verb::Admin,
        _ if is_admin_operation(op) => Verb::Admin,
        _ => Verb::Other,
    }
}

/// Operation names about settings rather than content (matched case-insensitively).
fn is_admin_operation(op: &str) -> bool {
    const WORDS: [&str; 8] = ["bucket", "acl", "iam", "accesscontrol", "notification", "hmac", "retention", "policy"];
    let op = op.to_ascii_lowercase();
    WORDS.iter().any(|w| op.contains(w))
}

/// XML API bucket sub-resources that read settings, not the object list.
const BUCKET_SETTINGS: [&str; 12] = [
    "acl",
    "billing",
    "cors",
    "encryptionConfig",
    "iam",
    "lifecycle",
    "location",
    "logging",
    "storageClass",
    "tagging",
    "versioning",
    "website",
];

/// `cs_uri`'s path and query (empty without a `?`), split once per row by a byte search.
fn split_uri(uri: &str) -> (&str, &str) {
    match memchr::memchr(b'?', uri.as_bytes()) {
        Some(at) => (&uri[..at], &uri[at + 1..]),
        None => (uri, ""),
    }
}

fn verb_from_method(method: &str, target: Target, path: &str, query: &str) -> Verb {
    match method {
        "GET" if target == Target::Bucket => {
            let lists = if let Some(json) = path.strip_prefix("/storage/v1/b/") {
                json.trim_end_matches('/').ends_with("/o")
            } else {
                !query.split('&').any(|p| BUCKET_SETTINGS.contains(&p.split('=').next().unwrap_or(p)))
            };
            if lists { Verb::List } else { Verb::Admin }
        }
        "GET" => Verb::Read,
        "PUT" | "POST" => Verb::Write,
        "DELETE" => Verb::Delete,
        "PATCH" => Verb::Admin,
        _ => Verb::Other,
    }
}

fn caller_class(
    row: &UsageRow<'_>,
    registry: bool,
    target: Target,
    action: Action,
    family: ClientFamily,
) -> CallerClass {
    use ClientFamily as F;
    let console = row.cs_referer.starts_with("https://console.cloud.google.com/")
        || row.cs_referer.starts_with("https://console.developers.google.com/");
    match family {
        F::Lifecycle => CallerClass::GoogleInternalOrAutomation,
        _ if matches!(action, Action::Admin | Action::List) => CallerClass::OwnerAdmin,
        F::Gcloud | F::Gsutil if registry => CallerClass::OwnerAdmin,
        F::Browser if console => CallerClass::OwnerAdmin,
        F::HttpClient | F::None if target == Target::Blob => CallerClass::GoogleInternalOrAutomation,
        _ => CallerClass::EndUser,
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
