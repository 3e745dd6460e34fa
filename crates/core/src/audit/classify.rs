//! An Artifact Registry audit entry → the same [`RegistryEvent`] a usage-log row becomes: which
//! registry, project, repository and image, which tag or digest, what was done, by whom, with
//! which client. The rules are stated in the README ("Artifact Registry audit logs") and
//! checked against `fixtures/audit/cases.json`.

use super::entry::{AuditLog, LogEntry};
use crate::object::ObjectRef;
use crate::registry_event::{
    Action, ArtifactFormat, CallerClass, EventTime, ImageRef, RegistryEvent, SourceKind, Target,
};
use crate::usage::user_agent::{ClientMemo, strip_gfe};

/// gcr.io repositories are Artifact Registry repositories named after their host.
const GCR_HOSTS: [&str; 4] = ["gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"];

/// Strings an event needs that the entry does not hold as such (a host built from the
/// location, an image path with `%2F` decoded). Reused from entry to entry.
#[derive(Debug, Default)]
pub struct Scratch {
    host: String,
    repository: String,
    /// The last user agent parsed (entries of one sink object come in runs from one client).
    clients: ClientMemo,
}

/// What an audit entry is about, read from `resourceName` and `requestUrl`.
struct Resource<'a> {
    project: &'a str,
    location: &'a str,
    /// `None` for calls about a location as a whole (`ListRepositories`).
    repository: Option<&'a str>,
    /// The image path, still percent-encoded as in `resourceName`, or already decoded from the URL.
    image: Option<(&'a str, bool)>,
}

/// `projects/P/locations/L[/repositories/R[/dockerImages/IMAGE…]]`; `None` for another shape.
fn resource(name: &str) -> Option<Resource<'_>> {
    let rest = name.strip_prefix("projects/")?;
    let (project, rest) = rest.split_once("/locations/")?;
    if project.is_empty() || project.contains('/') || rest.is_empty() {
        return None;
    }
    let Some((location, rest)) = rest.split_once("/repositories/") else {
        // A location alone: repository listings and other calls above any one repository.
        let ok = !rest.contains('/');
        return ok.then_some(Resource { project, location: rest, repository: None, image: None });
    };
    let (repository, rest) = rest.split_once('/').unwrap_or((rest, ""));
    if location.is_empty() || location.contains('/') || repository.is_empty() {
        return None;
    }
    let image = rest.strip_prefix("dockerImages/").map(|image| {
        // `IMAGE@sha256:…` or `IMAGE:tag` (dockerImages resource ids) or a trailing `/…`: only
        // the path is the image.
        let end = image.find(['@', ':', '/']).unwrap_or(image.len());
        (&image[..end], true)
    });
    Some(Resource { project, location, repository: Some(repository), image: image.filter(|(i, _)| !i.is_empty()) })
}

/// The image path and reference from a Docker registry URL: `/v2/PATH/manifests/REF`,
/// `/v2/PATH/blobs/DIGEST`, `/v2/PATH/blobs/uploads[/ID]`, `/v2/PATH/tags/list`. Read from the
/// right, by the last segments only: PATH may have components named `manifests`, `blobs` or
/// `tags` (`team/manifests` is a valid image name), and a tag may be `uploads` or `list`.
fn docker_url(url: &str) -> (Option<&str>, Option<&str>) {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix("/v2/") else { return (None, None) };
    if let Some(image) = rest.strip_suffix("/tags/list") {
        return (Some(image), None);
    }
    let Some((head, last)) = rest.rsplit_once('/') else { return (None, None) };
    let upload = head.strip_suffix("/blobs/uploads").or(head.strip_suffix("/blobs").filter(|_| last == "uploads"));
    if let Some(image) = upload {
        return (Some(image), None);
    }
    match head.strip_suffix("/manifests").or(head.strip_suffix("/blobs")) {
        Some(image) => (Some(image), (!last.is_empty()).then_some(last)),
        None => (None, None),
    }
}

/// Format, target and action of a method name (old names included, see the reference).
fn method(name: &str) -> (Option<ArtifactFormat>, Target, Action) {
    use Action::*;
    use ArtifactFormat as F;
    if let Some(docker) = name.strip_prefix("Docker-") {
        let (target, action) = match docker {
            "GetManifest" => (Target::Manifest, Pull),
            "HeadManifest" => (Target::Manifest, Other),
            "PutManifest" => (Target::Manifest, Push),
            "DeleteManifest" | "DeleteTag" => (Target::Manifest, Delete),
            "ServeBlob" | "EmptyTarBlob" => (Target::Blob, Pull),
            "HeadBlob" | "HeadEmptyTarBlob" | "StartUpload" | "CancelUpload" => (Target::Blob, Other),
            "FinishUpload" => (Target::Blob, Push),
            "DeleteBlob" => (Target::Blob, Delete),
            "GetTags" | "GetEmptyTags" | "Catalog" => (Target::Repository, List),
            "CreateOnPush" => (Target::Repository, Admin),
            _ => (Target::Manifest, Other),
        };
        return (Some(F::Docker), target, action);
    }
    if let Some(rpc) = name.strip_prefix("google.devtools.artifactregistry.") {
        let rpc = rpc.rsplit('.').next().unwrap_or(rpc);
        if rpc == "DownloadFile" {
            return (Some(F::Generic), Target::Package, Download);
        }
        let action = if rpc.starts_with("List") {
            List
        } else if ["Create", "Update", "Delete", "Set", "Import", "Batch"].iter().any(|p| rpc.starts_with(p)) {
            Admin
        } else {
            Other
        };
        return (None, Target::Repository, action);
    }
    let (prefix, rest) = name.split_once('-').unwrap_or((name, ""));
    let format = match prefix {
        "Maven" => F::Maven,
        "Npm" => F::Npm,
        "Python" => F::Python,
        "Apt" => F::Apt,
        "Yum" => F::Yum,
        "Go" => F::Go,
        _ => return (None, Target::Repository, Other),
    };
    let action = match rest {
        "Artifact-Download" | "File-Download" | "InstallPackage" | "ViewPackageFile" | "DownloadZipFile"
        | "DownloadModFile" => Download,
        r if r.contains("Upload") || r.contains("Publish") => Upload,
        _ => Other,
    };
    (Some(format), Target::Package, action)
}

/// The HTTP status that corresponds to a `google.rpc.Code` (the mapping `google/rpc/code.proto` documents).
pub fn http_status(code: i64) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

fn caller_class(principal: Option<&str>, user_agent: &str) -> CallerClass {
    let google_agent = principal.is_some_and(|p| {
        p.ends_with("@container-analysis.iam.gserviceaccount.com")
            || p.ends_with("@cloudbuild.gserviceaccount.com")
            || (p.starts_with("service-") && p.contains("@gcp-sa-") && p.ends_with(".iam.gserviceaccount.com"))
    });
    if google_agent || user_agent.starts_with("ContainerAnalysis") {
        CallerClass::GoogleInternalOrAutomation
    } else if principal.is_some_and(|p| p.ends_with(".gserviceaccount.com")) {
        CallerClass::Workload
    } else {
        CallerClass::EndUser
    }
}

/// Classifies an Artifact Registry entry (the reader has checked service, type, timestamp,
/// insert id and resource shape). `row` and `line` are the entry's place in `source`.
#[allow(clippy::too_many_arguments)]
pub fn classify<'a>(
    entry: &'a LogEntry<'a>,
    payload: &'a AuditLog<'a>,
    time_micros: i64,
    source: &'a ObjectRef,
    row: u64,
    line: u64,
    scratch: &'a mut Scratch,
) -> Result<RegistryEvent<'a>, String> {
    let method_name = payload.method_name.as_deref().ok_or("protoPayload.methodName is missing")?;
    let resource_name = payload.resource_name.as_deref().unwrap_or_default();
    let resource = resource(resource_name).ok_or_else(|| {
        format!("protoPayload.resourceName {resource_name:?} is not projects/P/locations/L[/repositories/R[/…]]")
    })?;
    let (format, target, action) = method(method_name);
    let request_url = payload.request.as_ref().and_then(|r| r.request_url.as_deref());
    let (url_image, reference) = match format {
        Some(ArtifactFormat::Docker) => request_url.map(docker_url).unwrap_or_default(),
        _ => (None, None),
    };

    let gcr = resource.repository.is_some_and(|r| GCR_HOSTS.contains(&r));
    scratch.host.clear();
    scratch.repository.clear();
    let host_suffix = match format {
        Some(ArtifactFormat::Docker) => Some("docker"),
        Some(ArtifactFormat::Maven) => Some("maven"),
        Some(ArtifactFormat::Npm) => Some("npm"),
        Some(ArtifactFormat::Python) => Some("python"),
        Some(ArtifactFormat::Apt) => Some("apt"),
        Some(ArtifactFormat::Yum) => Some("yum"),
        Some(ArtifactFormat::Go) => Some("go"),
        Some(ArtifactFormat::Generic) | None => None,
    };
    let has_host = match (gcr && format == Some(ArtifactFormat::Docker), host_suffix) {
        (true, _) => {
            scratch.host.push_str(resource.repository.unwrap_or_default());
            true
        }
        (false, Some(suffix)) => {
            scratch.host.push_str(resource.location);
            scratch.host.push('-');
            scratch.host.push_str(suffix);
            scratch.host.push_str(".pkg.dev");
            true
        }
        (false, None) => false,
    };
    let has_repository = match (format, resource.repository) {
        // A call about a location as a whole names no repository.
        (_, None) | (None, _) => false,
        (Some(ArtifactFormat::Docker), Some(repository_id)) => {
            let image = resource.image.or(url_image.map(|u| (u, false)));
            match image {
                Some((image, encoded)) => {
                    let image: std::borrow::Cow<'_, str> = if encoded {
                        percent_encoding::percent_decode_str(image).decode_utf8_lossy()
                    } else {
                        // The URL names the path after the host: for pkg.dev `P/R/IMAGE`, for gcr.io `P/IMAGE`.
                        let skip = if gcr { 1 } else { 2 };
                        image.splitn(skip + 1, '/').nth(skip).unwrap_or_default().into()
                    };
                    scratch.repository.push_str(resource.project);
                    if !gcr {
                        scratch.repository.push('/');
                        scratch.repository.push_str(repository_id);
                    }
                    if !image.is_empty() {
                        scratch.repository.push('/');
                        scratch.repository.push_str(&image);
                    }
                    true
                }
                None => false,
            }
        }
        (Some(_), Some(repository_id)) => {
            scratch.repository.push_str(resource.project);
            scratch.repository.push('/');
            scratch.repository.push_str(repository_id);
            true
        }
    };
    let metadata = payload.request_metadata.as_ref();
    let user_agent = strip_gfe(metadata.and_then(|m| m.caller_supplied_user_agent.as_deref()).unwrap_or_default());
    let client = scratch.clients.parse(user_agent);
    let scratch: &'a Scratch = scratch;
    let registry_host = has_host.then_some(scratch.host.as_str());
    let repository = has_repository.then_some(scratch.repository.as_str());

    let code = payload.status.as_ref().and_then(|s| s.code).unwrap_or(0);
    let auth = payload.authentication_info.as_ref();
    let principal =
        auth.and_then(|a| a.principal_email.as_deref().filter(|p| !p.is_empty()).or(a.principal_subject.as_deref()));
    Ok(RegistryEvent {
        event_time: EventTime(time_micros),
        time_micros,
        registry_host,
        project: Some(resource.project.into()),
        repository,
        image: match (registry_host, repository) {
            (Some(host), Some(repository)) => Some(ImageRef { host, repository }),
            _ => None,
        },
        digest: reference.filter(|r| r.starts_with("sha256:")),
        target,
        action,
        success: code == 0,
        status: http_status(code),
        method: payload.request.as_ref().and_then(|r| r.request_method.as_deref()).unwrap_or_default(),
        operation: method_name,
        bucket: None,
        object: None,
        client_family: client.family,
        client_version: client.version,
        user_agent,
        caller_class: caller_class(principal, user_agent),
        client_ip: metadata.and_then(|m| m.caller_ip.as_deref()).unwrap_or_default(),
        request_bytes: 0,
        response_bytes: 0,
        time_taken_micros: 0,
        request_id: entry.insert_id.as_deref().unwrap_or_default(),
        invalid_utf8: false,
        source_bucket: &source.bucket,
        source_object: &source.name,
        source_generation: source.generation,
        source_row: row,
        source_line: line,
        source_kind: SourceKind::AuditLog,
        principal,
        artifact_format: format,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::docker_url;

    #[test]
    fn docker_urls_are_read_from_the_right() {
        let sha = "sha256:86084fc7e982af7b0ef24fecdbbf4ab94d679ea05b780911c4fd0d3bae976e69";
        let blob = format!("/v2/p/r/team/manifests/blobs/{sha}");
        type Parts<'a> = (Option<&'a str>, Option<&'a str>);
        let cases: [(&str, Parts<'_>); 11] = [
            ("/v2/p/r/team/api/manifests/v1.2.0", (Some("p/r/team/api"), Some("v1.2.0"))),
            (&blob, (Some("p/r/team/manifests"), Some(sha))),
            ("/v2/p/r/api/manifests/uploads", (Some("p/r/api"), Some("uploads"))),
            ("/v2/p/r/api/manifests/list", (Some("p/r/api"), Some("list"))),
            ("/v2/p/r/blobs/tags/list?n=10", (Some("p/r/blobs"), None)),
            ("/v2/p/r/api/blobs/uploads/", (Some("p/r/api"), None)),
            ("/v2/p/r/api/blobs/uploads", (Some("p/r/api"), None)),
            ("/v2/p/r/api/blobs/uploads/6a1d?digest=sha256:0", (Some("p/r/api"), None)),
            ("/v2/p/r/api/manifests/", (Some("p/r/api"), None)),
            ("/v2/_catalog", (None, None)),
            ("/artifacts/x", (None, None)),
        ];
        for (url, want) in cases {
            assert_eq!(docker_url(url), want, "{url}");
        }
    }
}
