//! Synthetic Artifact Registry audit-log sink objects (Cloud Audit Logs, Data Access) for the
//! audit benchmark: one hour's `…_S0.json` as a Cloud Storage log sink writes it, one
//! `LogEntry` JSON per line (~1.5 KB each), deterministically for a seed (SplitMix64, the same
//! bytes on every machine).
//!
//! The entries have the shape and field order of `fixtures/audit/sink/…_S0.json` (the
//! reference's `AuditLog` payload with `authorizationInfo`, `resourceLocation`, the
//! `audited_resource` labels, nanosecond timestamps, a `receiveTimestamp` a little later), and
//! the traffic is modelled on the same mix:
//! - a world of Docker repositories (pkg.dev in several locations, and gcr.io repositories),
//!   images with nested paths (`team/api`, `platform/ingress/nginx`) made of an index, platform
//!   manifests, a config blob and layers (base layers shared), popularity following a Zipf-like law;
//! - GKE nodes (the compute service account, containerd, `gce-internal-ip`) pulling by digest,
//!   people (docker, IPv4 / IPv6) and CI (docker, buildkit, a workload-identity principal)
//!   pulling by tag (`HeadManifest`, `GetManifest` of the tag and the platform, config and the
//!   layers not cached), Cloud Build, the vulnerability scanner (`ContainerAnalysis/1.0`,
//!   `private`), pushes (`HeadBlob` refused with code 5, `StartUpload`, `FinishUpload`,
//!   `PutManifest`), tag listings (crane), the cleanup policy's deletes (the service agent),
//!   npm / Maven / Python (pip's user agent, JSON inside: escapes) / Go / Apt / Yum downloads
//!   and uploads, admin API reads, refused and rate-limited calls and their retries;
//! - entries of Cloud Storage in the same sink (skipped by the reader);
//! - rare defects: an entry cut off mid-line, a line that is a JSON array (as in the fixture),
//!   and an entry written twice a few lines later (same `insertId` and `timestamp`: a duplicate).
//!
//! [`AuditSynthStats`] counts what a correct read gives (entries, events, skipped, malformed,
//! duplicates, events per action), so a benchmark can hold every reader to it. Addresses are
//! from RFC 5737 / RFC 3849, digests and insert ids are random.

use std::io::{self, Write};

use crate::rng::Rng;

/// The object's name in the sink bucket (and the bucket the benchmark serves it from).
pub const AUDIT_OBJECT: &str = "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json";
pub const AUDIT_BUCKET: &str = "demo-gcr-logs";
/// The seed the benchmark uses.
pub const DEFAULT_SEED: u64 = 0x6175_6469_745f_6c67;
/// 2024-07-04T23:00:00Z, the hour the entries describe.
pub const HOUR_START_SECS: i64 = 1_720_134_000;
const HOUR_NANOS: i64 = 3_600_000_000_000;

const PROJECT: &str = "demo-project";
const PROJECT_NUMBER: &str = "123456789012";
const AR: &str = "artifactregistry.googleapis.com";

/// Defects, per session (a pull, a push …), and copies per event.
const TRUNCATED_PER_SESSION: f64 = 1.0 / 1500.0;
const ARRAY_LINE_PER_SESSION: f64 = 1.0 / 10_000.0;
const DUPLICATE_PER_EVENT: f64 = 1.0 / 2000.0;

/// Actions in `gcr_usage_core::registry_event::Action` order (the counts' index).
pub const ACTIONS: [&str; 8] = ["pull", "push", "download", "upload", "delete", "list", "admin", "other"];
const PULL: usize = 0;
const PUSH: usize = 1;
const DOWNLOAD: usize = 2;
const UPLOAD: usize = 3;
const DELETE: usize = 4;
const LIST: usize = 5;
const ADMIN: usize = 6;
const OTHER: usize = 7;

/// What was written, and so what a correct read of it gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSynthStats {
    pub bytes: u64,
    /// Non-blank lines: `events + skipped + malformed + duplicates`.
    pub entries: u64,
    pub events: u64,
    pub skipped: u64,
    pub malformed: u64,
    pub duplicates: u64,
    /// Events per action ([`ACTIONS`]).
    pub actions: [u64; 8],
    /// Events with a non-zero status code (refused, not found, rate-limited …).
    pub failed: u64,
}

/// Writes an audit sink object of at least `target_bytes` (it stops after the session that
/// reaches it), deterministically for `seed`.
pub fn write_audit_log<W: Write>(writer: W, target_bytes: u64, seed: u64) -> io::Result<AuditSynthStats> {
    let mut rng = Rng::new(seed);
    let world = World::new(&mut rng);
    let mut out = Out {
        writer,
        stats: AuditSynthStats::default(),
        line: Vec::with_capacity(4096),
        pending: Vec::new(),
        written: 0,
    };
    let mut time = 0i64;
    let mut session = 0u64;
    while out.stats.bytes < target_bytes {
        // Sessions start in order over the hour, spread by how much has been written.
        let progress = out.stats.bytes as f64 / target_bytes as f64;
        time = time.max((progress * HOUR_NANOS as f64) as i64) + rng.below(2_000_000_000) as i64;
        let mut s = Session { rng: &mut rng, world: &world, out: &mut out, time, truncate: false };
        s.truncate = s.rng.chance(TRUNCATED_PER_SESSION) && session > 0;
        if session > 0 && s.rng.chance(ARRAY_LINE_PER_SESSION) {
            // Never the first line: a first line starting with `[` makes the object an array.
            s.out.raw_malformed(b"[\"Docker-GetManifest\",\"2024-07-04T23:33:00Z\"]")?;
        }
        s.run()?;
        session += 1;
    }
    out.flush_pending(true)?;
    out.writer.flush()?;
    Ok(out.stats)
}

// ---------------------------------------------------------------------------------------------
// Randomness

// The draws only this generator makes; the rest are `crate::rng::Rng`'s.
impl Rng {
    /// Cloud Logging's insert ids: 11–12 characters of `[0-9a-z]`.
    fn insert_id(&mut self, out: &mut Vec<u8>) {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let len = 11 + self.below(2);
        let mut x = self.next_u64();
        for _ in 0..len {
            out.push(ALPHABET[(x % 36) as usize]);
            x /= 36;
        }
    }

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len).map(|_| ALPHABET[self.below(64) as usize] as char).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The world: repositories, images, clients

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Docker,
    Npm,
    Maven,
    Python,
    Go,
    Apt,
    Yum,
}

struct Repo {
    location: &'static str,
    name: &'static str,
    format: Format,
}

const REPOS: &[Repo] = &[
    Repo { location: "europe-west2", name: "apps", format: Format::Docker },
    Repo { location: "europe-west2", name: "base", format: Format::Docker },
    Repo { location: "us-central1", name: "ml", format: Format::Docker },
    Repo { location: "us-east1", name: "services", format: Format::Docker },
    Repo { location: "asia-northeast1", name: "edge", format: Format::Docker },
    Repo { location: "us", name: "gcr.io", format: Format::Docker },
    Repo { location: "europe", name: "eu.gcr.io", format: Format::Docker },
    Repo { location: "asia", name: "asia.gcr.io", format: Format::Docker },
    Repo { location: "us-central1", name: "npm-libs", format: Format::Npm },
    Repo { location: "europe-west2", name: "maven-releases", format: Format::Maven },
    Repo { location: "us-central1", name: "py-pkgs", format: Format::Python },
    Repo { location: "us-central1", name: "go-mods", format: Format::Go },
    Repo { location: "europe-west2", name: "apt-internal", format: Format::Apt },
    Repo { location: "europe-west2", name: "yum-internal", format: Format::Yum },
];
const DOCKER_REPOS: usize = 8;

const TEAMS: &[&str] = &["team", "platform", "ml", "data", "web", "infra", "payments", "search"];
const APPS: &[&str] = &[
    "api",
    "worker",
    "base",
    "frontend",
    "ingress/nginx",
    "training/gpu-worker",
    "etl/spark-driver",
    "batch/report",
    "auth",
    "gateway",
    "scheduler",
    "notifier",
    "cache/redis-exporter",
    "search-indexer",
    "tools/debug",
];
const TAGS: &[&str] = &["latest", "v1.2.0", "v1.2.1", "v2.0.0", "main", "3.19", "2024-07-04", "prod", "staging"];

struct Image {
    repo: usize,
    /// The path after the repository (`team/api`), and as `resourceName` writes it (`team%2Fapi`).
    path: String,
    encoded: String,
    tags: Vec<&'static str>,
    index: String,
    manifests: Vec<String>,
    config: String,
    layers: Vec<String>,
}

/// Who calls, from where, with what.
struct Client {
    email: Option<String>,
    subject: String,
    ip: String,
    /// The user agent, already JSON-escaped (as it appears in the entry).
    agent: &'static str,
}

const DOCKER_AGENTS: &[&str] = &[
    r"docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-21-generic os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)",
    r"docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.6.12-linuxkit os/linux arch/arm64 UpstreamClient(Docker-Client/24.0.7 \\(darwin\\)),gzip(gfe)",
    r"docker/25.0.3 go/go1.21.6 git-commit/f417435 kernel/5.15.146.1-microsoft-standard-WSL2 os/linux arch/amd64 UpstreamClient(Docker-Client/25.0.3 \\(windows\\)),gzip(gfe)",
];
const CI_AGENTS: &[&str] = &[
    r"docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-1022-azure os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)",
    "buildkit/v0.12.5,gzip(gfe)",
    "kaniko/v1.21.0 go-containerregistry/v0.19.0,gzip(gfe)",
];
const NODE_AGENTS: &[&str] =
    &["containerd/v1.7.12,gzip(gfe)", "containerd/1.7.13-gke.0,gzip(gfe)", "cri-o/1.29.1,gzip(gfe)"];
const CLOUD_BUILD_AGENT: &str = r"docker/20.10.24 go/go1.20.7 git-commit/5d6db84 kernel/5.15.0-1048-gcp os/linux arch/amd64 UpstreamClient(Docker-Client/20.10.24 \\(linux\\)),gzip(gfe)";
const CRANE_AGENT: &str = "crane/v0.19.1 go-containerregistry/v0.19.1,gzip(gfe)";
const GCLOUD_AGENT: &str = "google-cloud-sdk gcloud/480.0.0 command/gcloud.artifacts.docker.images.list invocation-id/3f1c0a7e9b2d4c6e8a0b2d4f6a8c0e2b environment/None environment-version/None client-os/LINUX client-os-ver/6.5.0 client-pltf-arch/x86_64 interactive/True from-script/False python/3.11.8 term/xterm-256color (Linux 6.5.0-21-generic),gzip(gfe)";
const NPM_AGENT: &str = "npm/10.2.4 node/v20.11.0 linux x64 workspaces/false,gzip(gfe)";
const MAVEN_AGENT: &str = "Apache-Maven/3.9.6 (Java 17.0.10; Linux 6.5.0-21-generic),gzip(gfe)";
const PIP_AGENT: &str = r#"pip/24.0 {\"ci\":true,\"cpu\":\"x86_64\",\"distro\":{\"id\":\"bookworm\",\"name\":\"Debian GNU/Linux\",\"version\":\"12\"},\"implementation\":{\"name\":\"CPython\",\"version\":\"3.11.8\"},\"installer\":{\"name\":\"pip\",\"version\":\"24.0\"},\"python\":\"3.11.8\"},gzip(gfe)"#;
const GO_AGENT: &str = "Go-http-client/1.1,gzip(gfe)";
const APT_AGENT: &str = "Debian APT-HTTP/1.3 (2.6.1),gzip(gfe)";
const YUM_AGENT: &str = "libdnf (Rocky Linux 9.3; generic; Linux.x86_64),gzip(gfe)";

#[derive(Clone, Copy)]
enum Who {
    Person,
    Node,
    Ci,
    CloudBuild,
    Scanner,
    Deployer,
    Federated,
    ServiceAgent,
}

struct World {
    images: Vec<Image>,
    /// Cumulative popularity weights of `images`.
    popularity: Vec<f64>,
    people: Vec<Client>,
    nodes: Vec<Client>,
    ci: Vec<Client>,
    cloud_build: Client,
    scanner: Client,
    deployer: Vec<Client>,
    federated: Client,
    service_agent: Client,
}

fn person(name: &str, ip: String, agent: &'static str) -> Client {
    let email = format!("{name}@example.com");
    Client { subject: format!("user:{email}"), email: Some(email), ip, agent }
}

fn account(email: &str, ip: String, agent: &'static str) -> Client {
    Client { subject: format!("serviceAccount:{email}"), email: Some(email.to_string()), ip, agent }
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let base_layers: Vec<String> = (0..12).map(|_| rng.digest()).collect();
        let mut images = Vec::new();
        for (repo, Repo { name, .. }) in REPOS.iter().enumerate().take(DOCKER_REPOS) {
            let gcr = name.contains("gcr.io");
            for _ in 0..(if gcr { 8 } else { 30 }) {
                let path = if gcr && rng.chance(0.5) {
                    rng.pick(APPS).split('/').next_back().unwrap_or("app").to_string()
                } else {
                    format!("{}/{}", rng.pick(TEAMS), rng.pick(APPS))
                };
                let tags = (0..1 + rng.below(3)).map(|_| *rng.pick(TAGS)).collect();
                let platforms = 1 + rng.below(2);
                let layers = (0..2 + rng.below(7))
                    .map(|i| if i < 2 && rng.chance(0.7) { rng.pick(&base_layers).clone() } else { rng.digest() })
                    .collect();
                images.push(Image {
                    repo,
                    encoded: path.replace('/', "%2F"),
                    path,
                    tags,
                    index: rng.digest(),
                    manifests: (0..platforms).map(|_| rng.digest()).collect(),
                    config: rng.digest(),
                    layers,
                });
            }
        }
        let mut total = 0.0;
        let popularity = (0..images.len())
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(1.1);
                total
            })
            .collect();
        let people = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ip = if i % 3 == 2 {
                    format!("2001:db8:85a3::{:x}:{:x}", rng.below(0xffff), rng.below(0xffff))
                } else {
                    format!("198.51.100.{}", 10 + rng.below(200))
                };
                person(name, ip, DOCKER_AGENTS[i % DOCKER_AGENTS.len()])
            })
            .collect();
        let node_account = format!("{PROJECT_NUMBER}-compute@developer.gserviceaccount.com");
        let nodes = (0..6).map(|i| account(&node_account, "gce-internal-ip".into(), NODE_AGENTS[i % 3])).collect();
        let ci_account = format!("ci@{PROJECT}.iam.gserviceaccount.com");
        let ci = (0..3).map(|i| account(&ci_account, format!("203.0.113.{}", 50 + i), CI_AGENTS[i])).collect();
        let deployer_account = format!("deployer@{PROJECT}.iam.gserviceaccount.com");
        let deployer = vec![
            account(&deployer_account, "2001:db8:1f70::999:de8:7648:6e8".into(), CRANE_AGENT),
            account(&deployer_account, "192.0.2.45".into(), GCLOUD_AGENT),
        ];
        World {
            images,
            popularity,
            people,
            nodes,
            ci,
            cloud_build: account(
                &format!("{PROJECT_NUMBER}@cloudbuild.gserviceaccount.com"),
                "gcp-internal-ip".into(),
                CLOUD_BUILD_AGENT,
            ),
            scanner: account(
                &format!("service-{PROJECT_NUMBER}@container-analysis.iam.gserviceaccount.com"),
                "private".into(),
                "ContainerAnalysis/1.0",
            ),
            deployer,
            federated: Client {
                email: None,
                subject: "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/github/subject/repo:demo/app:ref:refs/heads/main".into(),
                ip: "203.0.113.77".into(),
                agent: CI_AGENTS[1],
            },
            service_agent: account(
                &format!("service-{PROJECT_NUMBER}@gcp-sa-artifactregistry.iam.gserviceaccount.com"),
                "private".into(),
                "ArtifactRegistry-CleanupPolicy/1.0",
            ),
        }
    }

    fn image(&self, rng: &mut Rng) -> &Image {
        let total = *self.popularity.last().expect("images");
        let x = rng.f64() * total;
        let i = self.popularity.partition_point(|c| *c < x).min(self.images.len() - 1);
        &self.images[i]
    }

    fn client(&self, rng: &mut Rng, who: Who) -> &Client {
        match who {
            Who::Person => rng.pick(&self.people),
            Who::Node => rng.pick(&self.nodes),
            Who::Ci => rng.pick(&self.ci),
            Who::CloudBuild => &self.cloud_build,
            Who::Scanner => &self.scanner,
            Who::Deployer => rng.pick(&self.deployer),
            Who::Federated => &self.federated,
            Who::ServiceAgent => &self.service_agent,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing entries

struct Out<W> {
    writer: W,
    stats: AuditSynthStats,
    line: Vec<u8>,
    /// Copies to write again: (events still to write before it, the line).
    pending: Vec<(u32, Vec<u8>)>,
    written: u64,
}

impl<W: Write> Out<W> {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.writer.write_all(line)?;
        self.writer.write_all(b"\n")?;
        self.stats.bytes += line.len() as u64 + 1;
        self.stats.entries += 1;
        self.written += 1;
        Ok(())
    }

    /// Writes the copies whose time has come (all of them at the end).
    fn flush_pending(&mut self, all: bool) -> io::Result<()> {
        let mut i = 0;
        while i < self.pending.len() {
            if all || self.pending[i].0 == 0 {
                let (_, line) = self.pending.swap_remove(i);
                self.write_line(&line)?;
                self.stats.duplicates += 1;
            } else {
                self.pending[i].0 -= 1;
                i += 1;
            }
        }
        Ok(())
    }

    fn raw_malformed(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_line(line)?;
        self.stats.malformed += 1;
        Ok(())
    }
}

/// One call, as the entry records it.
struct Call<'a> {
    client: &'a Client,
    method: &'a str,
    /// `(code, message)` of a failed call.
    status: Option<(u8, &'a str)>,
    repo: &'a Repo,
    /// The part of `resourceName` after `…/repositories/R` (`/dockerImages/team%2Fapi`).
    resource_tail: &'a str,
    permission: &'a str,
    permission_type: &'a str,
    /// `(requestMethod, requestUrl)` of an HTTP call, or the RPC of an API request.
    request: Request<'a>,
    action: usize,
}

enum Request<'a> {
    Http(&'a str, &'a str),
    Api(&'a str),
}

struct Session<'a, W> {
    rng: &'a mut Rng,
    world: &'a World,
    out: &'a mut Out<W>,
    /// Nanoseconds into the hour.
    time: i64,
    /// Cut the next entry off mid-line.
    truncate: bool,
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // The world's strings need no escaping except the pre-escaped user agents.
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// `2024-07-04T23:02:11.104518233Z` from nanoseconds since the epoch.
fn timestamp(out: &mut Vec<u8>, nanos: i64) {
    let secs = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    out.extend_from_slice(text.as_bytes());
}

impl<W: Write> Session<'_, W> {
    /// Advances the session's clock by 20–300 ms (never past the hour).
    fn tick(&mut self) -> i64 {
        self.time = (self.time + 20_000_000 + self.rng.below(280_000_000) as i64).min(HOUR_NANOS - 1);
        self.time
    }

    fn entry(&mut self, call: &Call<'_>) -> io::Result<()> {
        let at = HOUR_START_SECS * 1_000_000_000 + self.tick();
        let line = &mut self.out.line;
        line.clear();
        line.extend_from_slice(
            b"{\"protoPayload\":{\"@type\":\"type.googleapis.com/google.cloud.audit.AuditLog\",\"status\":",
        );
        match call.status {
            None => line.extend_from_slice(b"{}"),
            Some((code, message)) => {
                line.extend_from_slice(format!("{{\"code\":{code},\"message\":").as_bytes());
                json_str(line, message);
                line.push(b'}');
            }
        }
        line.extend_from_slice(b",\"authenticationInfo\":{");
        if let Some(email) = &call.client.email {
            line.extend_from_slice(b"\"principalEmail\":");
            json_str(line, email);
            line.push(b',');
        }
        line.extend_from_slice(b"\"principalSubject\":");
        json_str(line, &call.client.subject);
        line.extend_from_slice(b"},\"requestMetadata\":{\"callerIp\":");
        json_str(line, &call.client.ip);
        line.extend_from_slice(b",\"callerSuppliedUserAgent\":");
        json_str(line, call.client.agent);
        line.extend_from_slice(b",\"requestAttributes\":{},\"destinationAttributes\":{}},\"serviceName\":\"");
        line.extend_from_slice(AR.as_bytes());
        line.extend_from_slice(b"\",\"methodName\":");
        json_str(line, call.method);
        let repository = format!("projects/{PROJECT}/locations/{}/repositories/{}", call.repo.location, call.repo.name);
        line.extend_from_slice(b",\"authorizationInfo\":[{\"resource\":");
        json_str(line, &repository);
        line.extend_from_slice(b",\"permission\":");
        json_str(line, call.permission);
        line.extend_from_slice(if call.status.is_some_and(|(code, _)| code == 7) {
            b",\"granted\":false"
        } else {
            b",\"granted\":true"
        });
        line.extend_from_slice(b",\"resourceAttributes\":{},\"permissionType\":");
        json_str(line, call.permission_type);
        line.extend_from_slice(b"}],\"resourceName\":\"");
        line.extend_from_slice(repository.as_bytes());
        line.extend_from_slice(call.resource_tail.as_bytes());
        line.push(b'"');
        match call.request {
            Request::Http(method, url) => {
                line.extend_from_slice(
                    b",\"request\":{\"@type\":\"type.googleapis.com/google.logging.type.HttpRequest\",\"requestMethod\":",
                );
                json_str(line, method);
                line.extend_from_slice(b",\"requestUrl\":");
                json_str(line, url);
                line.push(b'}');
            }
            Request::Api(rpc) => {
                line.extend_from_slice(
                    b",\"request\":{\"@type\":\"type.googleapis.com/google.devtools.artifactregistry.v1.",
                );
                line.extend_from_slice(rpc.as_bytes());
                line.extend_from_slice(b"Request\",\"parent\":");
                json_str(line, &repository);
                line.push(b'}');
            }
        }
        line.extend_from_slice(b",\"resourceLocation\":{\"currentLocations\":[\"");
        line.extend_from_slice(call.repo.location.as_bytes());
        line.extend_from_slice(b"\"],\"originalLocations\":[\"");
        line.extend_from_slice(call.repo.location.as_bytes());
        line.extend_from_slice(b"\"]}},\"insertId\":\"");
        self.rng.insert_id(line);
        line.extend_from_slice(b"\",\"resource\":{\"type\":\"audited_resource\",\"labels\":{\"project_id\":\"");
        line.extend_from_slice(PROJECT.as_bytes());
        line.extend_from_slice(b"\",\"method\":");
        json_str(line, call.method);
        line.extend_from_slice(b",\"service\":\"");
        line.extend_from_slice(AR.as_bytes());
        line.extend_from_slice(b"\"}},\"timestamp\":\"");
        timestamp(line, at);
        line.extend_from_slice(if call.status.is_some() {
            b"\",\"severity\":\"ERROR\""
        } else {
            b"\",\"severity\":\"INFO\""
        });
        line.extend_from_slice(b",\"logName\":\"projects/");
        line.extend_from_slice(PROJECT.as_bytes());
        line.extend_from_slice(b"/logs/cloudaudit.googleapis.com%2Fdata_access\",\"receiveTimestamp\":\"");
        timestamp(line, at + 300_000_000 + self.rng.below(700_000_000) as i64);
        line.extend_from_slice(b"\"}");

        if self.truncate {
            self.truncate = false;
            let cut = 200 + self.rng.below(self.out.line.len() as u64 - 400) as usize;
            let line = std::mem::take(&mut self.out.line);
            self.out.raw_malformed(&line[..cut])?;
            self.out.line = line;
            return self.out.flush_pending(false);
        }
        let line = std::mem::take(&mut self.out.line);
        self.out.write_line(&line)?;
        self.out.stats.events += 1;
        self.out.stats.actions[call.action] += 1;
        self.out.stats.failed += u64::from(call.status.is_some());
        if self.rng.chance(DUPLICATE_PER_EVENT) {
            self.out.pending.push((self.rng.below(5) as u32, line.clone()));
        }
        self.out.line = line;
        self.out.flush_pending(false)
    }

    /// A Cloud Storage entry in the same sink: skipped by the reader.
    fn storage(&mut self) -> io::Result<()> {
        let at = HOUR_START_SECS * 1_000_000_000 + self.tick();
        let client = self.world.client(self.rng, Who::Person);
        let object = format!("builds/{}/app-{}.tar", self.rng.below(500), self.rng.below(100));
        let (method, permission) = if self.rng.chance(0.7) {
            ("storage.objects.get", "storage.objects.get")
        } else {
            ("storage.objects.list", "storage.objects.list")
        };
        let line = &mut self.out.line;
        line.clear();
        line.extend_from_slice(b"{\"protoPayload\":{\"@type\":\"type.googleapis.com/google.cloud.audit.AuditLog\",\"status\":{},\"authenticationInfo\":{\"principalEmail\":");
        json_str(line, client.email.as_deref().unwrap_or_default());
        line.extend_from_slice(b"},\"requestMetadata\":{\"callerIp\":");
        json_str(line, &client.ip);
        line.extend_from_slice(b",\"callerSuppliedUserAgent\":");
        json_str(line, GCLOUD_AGENT);
        line.extend_from_slice(b",\"requestAttributes\":{\"time\":\"");
        timestamp(line, at);
        line.extend_from_slice(
            b"\",\"auth\":{}},\"destinationAttributes\":{}},\"serviceName\":\"storage.googleapis.com\",\"methodName\":",
        );
        json_str(line, method);
        let resource = format!("projects/_/buckets/demo-artifacts/objects/{object}");
        line.extend_from_slice(b",\"authorizationInfo\":[{\"resource\":");
        json_str(line, &resource);
        line.extend_from_slice(b",\"permission\":");
        json_str(line, permission);
        line.extend_from_slice(
            b",\"granted\":true,\"resourceAttributes\":{},\"permissionType\":\"DATA_READ\"}],\"resourceName\":",
        );
        json_str(line, &resource);
        line.extend_from_slice(b",\"resourceLocation\":{\"currentLocations\":[\"europe-west2\"]}},\"insertId\":\"");
        self.rng.insert_id(line);
        line.extend_from_slice(b"\",\"resource\":{\"type\":\"gcs_bucket\",\"labels\":{\"project_id\":\"demo-project\",\"location\":\"europe-west2\",\"bucket_name\":\"demo-artifacts\"}},\"timestamp\":\"");
        timestamp(line, at);
        line.extend_from_slice(b"\",\"severity\":\"INFO\",\"logName\":\"projects/demo-project/logs/cloudaudit.googleapis.com%2Fdata_access\",\"receiveTimestamp\":\"");
        timestamp(line, at + 400_000_000 + self.rng.below(500_000_000) as i64);
        line.extend_from_slice(b"\"}");
        let line = std::mem::take(&mut self.out.line);
        self.out.write_line(&line)?;
        self.out.stats.skipped += 1;
        self.out.line = line;
        self.out.flush_pending(false)
    }

    fn run(&mut self) -> io::Result<()> {
        // Weights per session kind: node pulls dominate, as on a cluster.
        const KINDS: [u32; 12] = [24, 30, 7, 6, 4, 10, 1, 2, 4, 2, 1, 2];
        match self.rng.weighted_index(&KINDS) {
            0 => {
                let who = *self.rng.pick(&[Who::Person, Who::Person, Who::Ci, Who::CloudBuild, Who::Federated]);
                self.pull_by_tag(who)
            }
            1 => self.pull_by_digest(Who::Node),
            2 => self.pull_by_digest(Who::Scanner),
            3 => self.push(),
            4 => self.list_tags(),
            5 => self.package_download(),
            6 => self.package_upload(),
            7 => self.admin(),
            8 => self.storage(),
            9 => self.refused(),
            10 => self.cleanup(),
            _ => self.rate_limited(),
        }
    }

    /// `/v2/PATH` of an image: pkg.dev `P/R/IMAGE`, gcr.io `P/IMAGE`.
    fn v2(image: &Image) -> String {
        let repo = &REPOS[image.repo];
        if repo.name.contains("gcr.io") {
            format!("/v2/{PROJECT}/{}", image.path)
        } else {
            format!("/v2/{PROJECT}/{}/{}", repo.name, image.path)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn docker(
        &mut self,
        client: &Client,
        image: &Image,
        method: &str,
        http: &str,
        url: &str,
        status: Option<(u8, &str)>,
        write: bool,
        action: usize,
    ) -> io::Result<()> {
        let tail = format!("/dockerImages/{}", image.encoded);
        let (permission, permission_type) = if write {
            ("artifactregistry.repositories.uploadArtifacts", "DATA_WRITE")
        } else {
            ("artifactregistry.repositories.downloadArtifacts", "DATA_READ")
        };
        self.entry(&Call {
            client,
            method,
            status,
            repo: &REPOS[image.repo],
            resource_tail: &tail,
            permission,
            permission_type,
            request: Request::Http(http, url),
            action,
        })
    }

    fn blobs(&mut self, client: &Client, image: &Image, cached: f64) -> io::Result<()> {
        let base = Self::v2(image);
        self.docker(
            client,
            image,
            "Docker-ServeBlob",
            "GET",
            &format!("{base}/blobs/{}", image.config),
            None,
            false,
            PULL,
        )?;
        for layer in &image.layers {
            if !self.rng.chance(cached) {
                self.docker(
                    client,
                    image,
                    "Docker-ServeBlob",
                    "GET",
                    &format!("{base}/blobs/{layer}"),
                    None,
                    false,
                    PULL,
                )?;
            }
        }
        Ok(())
    }

    fn pull_by_tag(&mut self, who: Who) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let client = world.client(rng, who);
        let image = world.image(rng);
        let tag = *rng.pick(&image.tags);
        let platform = rng.pick(&image.manifests).clone();
        let base = Self::v2(image);
        self.docker(
            client,
            image,
            "Docker-HeadManifest",
            "HEAD",
            &format!("{base}/manifests/{tag}"),
            None,
            false,
            OTHER,
        )?;
        if self.rng.chance(0.25) {
            return Ok(()); // up to date: nothing more to fetch
        }
        self.docker(client, image, "Docker-GetManifest", "GET", &format!("{base}/manifests/{tag}"), None, false, PULL)?;
        self.docker(
            client,
            image,
            "Docker-GetManifest",
            "GET",
            &format!("{base}/manifests/{platform}"),
            None,
            false,
            PULL,
        )?;
        let cached = if matches!(who, Who::Person) { 0.4 } else { 0.05 };
        self.blobs(client, image, cached)
    }

    fn pull_by_digest(&mut self, who: Who) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let client = world.client(rng, who);
        let image = world.image(rng);
        let platform = rng.pick(&image.manifests).clone();
        let base = Self::v2(image);
        let index = image.index.clone();
        self.docker(
            client,
            image,
            "Docker-GetManifest",
            "GET",
            &format!("{base}/manifests/{index}"),
            None,
            false,
            PULL,
        )?;
        self.docker(
            client,
            image,
            "Docker-GetManifest",
            "GET",
            &format!("{base}/manifests/{platform}"),
            None,
            false,
            PULL,
        )?;
        let cached = if matches!(who, Who::Node) { 0.6 } else { 0.0 };
        self.blobs(client, image, cached)
    }

    fn push(&mut self) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let who = *rng.pick(&[Who::Ci, Who::Ci, Who::CloudBuild, Who::Federated]);
        let client = world.client(rng, who);
        let image = world.image(rng);
        let tag = *rng.pick(&image.tags);
        let base = Self::v2(image);
        if REPOS[image.repo].name.contains("gcr.io") && self.rng.chance(0.2) {
            // The first push to a gcr.io host creates its repository.
            self.entry(&Call {
                client,
                method: "Docker-CreateOnPush",
                status: None,
                repo: &REPOS[image.repo],
                resource_tail: "",
                permission: "artifactregistry.repositories.createOnPush",
                permission_type: "DATA_WRITE",
                request: Request::Http("POST", &format!("{base}/blobs/uploads/")),
                action: ADMIN,
            })?;
        }
        let blobs: Vec<&String> = std::iter::once(&image.config).chain(&image.layers).collect();
        for blob in blobs {
            let head = format!("{base}/blobs/{blob}");
            if self.rng.chance(0.6) {
                // Already there: the HEAD answers 200 and nothing is uploaded.
                self.docker(client, image, "Docker-HeadBlob", "HEAD", &head, None, false, OTHER)?;
                continue;
            }
            let missing = Some((5, "Requested entity was not found."));
            self.docker(client, image, "Docker-HeadBlob", "HEAD", &head, missing, false, OTHER)?;
            let upload = format!("{base}/blobs/uploads/");
            self.docker(client, image, "Docker-StartUpload", "POST", &upload, None, true, OTHER)?;
            let id = self.rng.token(48);
            let finish = format!("{base}/blobs/uploads/{id}?digest={}", blob.replace(':', "%3A"));
            self.docker(client, image, "Docker-FinishUpload", "PUT", &finish, None, true, PUSH)?;
        }
        let manifest = format!("{base}/manifests/{tag}");
        self.docker(client, image, "Docker-PutManifest", "PUT", &manifest, None, true, PUSH)
    }

    fn list_tags(&mut self) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let client = world.client(rng, Who::Deployer);
        let image = world.image(rng);
        let url = format!("{}/tags/list", Self::v2(image));
        // crane names only the repository in resourceName (the image is in the URL).
        self.entry(&Call {
            client,
            method: "Docker-GetTags",
            status: None,
            repo: &REPOS[image.repo],
            resource_tail: "",
            permission: "artifactregistry.repositories.downloadArtifacts",
            permission_type: "DATA_READ",
            request: Request::Http("GET", &url),
            action: LIST,
        })?;
        if self.rng.chance(0.5) {
            let tag = *self.rng.pick(&image.tags);
            let url = format!("{}/manifests/{tag}", Self::v2(image));
            self.docker(client, image, "Docker-GetManifest", "GET", &url, None, false, PULL)?;
        }
        Ok(())
    }

    fn package_download(&mut self) -> io::Result<()> {
        let format = *self.rng.pick(&[
            Format::Npm,
            Format::Npm,
            Format::Maven,
            Format::Maven,
            Format::Python,
            Format::Python,
            Format::Go,
            Format::Apt,
            Format::Yum,
        ]);
        let repo = REPOS.iter().find(|r| r.format == format).expect("a repository per format");
        let who = *self.rng.pick(&[Who::Ci, Who::Person, Who::CloudBuild]);
        let client = self.world.client(self.rng, who);
        let client = Client {
            agent: agent_of(format),
            email: client.email.clone(),
            subject: client.subject.clone(),
            ip: client.ip.clone(),
        };
        let n = 1 + self.rng.below(6);
        for _ in 0..n {
            let package = self.rng.below(40);
            let version = format!("{}.{}.{}", 1 + self.rng.below(3), self.rng.below(10), self.rng.below(20));
            let (meta, download, tail, url) = match format {
                Format::Npm => (
                    Some(("Npm-GetManifest", format!("/{PROJECT}/{}/@demo%2fpkg{package}", repo.name))),
                    "Npm-InstallPackage",
                    format!("/packages/@demo%2Fpkg{package}/versions/{version}"),
                    format!("/{PROJECT}/{}/@demo/pkg{package}/-/pkg{package}-{version}.tgz", repo.name),
                ),
                Format::Maven => (
                    None,
                    if self.rng.chance(0.5) { "Maven-Artifact-Download" } else { "Maven-File-Download" },
                    format!("/packages/com.example:lib{package}/versions/{version}"),
                    format!("/maven2/com/example/lib{package}/{version}/lib{package}-{version}.jar"),
                ),
                Format::Python => (
                    Some(("Python-PackageVersions", format!("/{PROJECT}/{}/simple/demo-utils{package}/", repo.name))),
                    "Python-InstallPackage",
                    format!("/packages/demo-utils{package}/versions/{version}"),
                    format!(
                        "/{PROJECT}/{}/demo-utils{package}/demo_utils{package}-{version}-py3-none-any.whl",
                        repo.name
                    ),
                ),
                Format::Go => (
                    Some((
                        "Go-DownloadModFile",
                        format!("/{PROJECT}/{}/example.com/mod{package}/@v/v{version}.mod", repo.name),
                    )),
                    "Go-DownloadZipFile",
                    format!("/packages/example.com%2Fmod{package}/versions/v{version}"),
                    format!("/{PROJECT}/{}/example.com/mod{package}/@v/v{version}.zip", repo.name),
                ),
                Format::Apt => (
                    None,
                    "Apt-ViewPackageFile",
                    format!("/files/pool%2Fmain%2Fd%2Fdemo{package}_{version}_amd64.deb"),
                    format!(
                        "/projects/{PROJECT}/locations/{}/repositories/{}/pool/main/d/demo{package}_{version}_amd64.deb",
                        repo.location, repo.name
                    ),
                ),
                _ => (
                    None,
                    "Yum-ViewPackageFile",
                    format!("/files/demo{package}-{version}.x86_64.rpm"),
                    format!(
                        "/projects/{PROJECT}/locations/{}/repositories/{}/demo{package}-{version}.x86_64.rpm",
                        repo.location, repo.name
                    ),
                ),
            };
            if let Some((method, meta_url)) = meta {
                // Go's .mod counts as a download; the npm / PyPI index reads are metadata.
                let action = if format == Format::Go { DOWNLOAD } else { OTHER };
                self.package(&client, repo, method, &format!("/packages/pkg{package}"), &meta_url, "GET", action)?;
            }
            self.package(&client, repo, download, &tail, &url, "GET", DOWNLOAD)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn package(
        &mut self,
        client: &Client,
        repo: &Repo,
        method: &str,
        tail: &str,
        url: &str,
        http: &str,
        action: usize,
    ) -> io::Result<()> {
        let write = action == UPLOAD;
        self.entry(&Call {
            client,
            method,
            status: None,
            repo,
            resource_tail: tail,
            permission: if write {
                "artifactregistry.repositories.uploadArtifacts"
            } else {
                "artifactregistry.repositories.downloadArtifacts"
            },
            permission_type: if write { "DATA_WRITE" } else { "DATA_READ" },
            request: Request::Http(http, url),
            action,
        })
    }

    fn package_upload(&mut self) -> io::Result<()> {
        let format = *self.rng.pick(&[Format::Npm, Format::Maven, Format::Python]);
        let repo = REPOS.iter().find(|r| r.format == format).expect("a repository per format");
        let ci = self.world.client(self.rng, Who::Ci);
        let client =
            Client { agent: agent_of(format), email: ci.email.clone(), subject: ci.subject.clone(), ip: ci.ip.clone() };
        let package = self.rng.below(40);
        let (method, url, http) = match format {
            Format::Npm => ("Npm-PublishPackage", format!("/{PROJECT}/{}/@demo%2fpkg{package}", repo.name), "PUT"),
            Format::Maven => (
                "Maven-Artifact-Upload",
                format!("/maven2/com/example/lib{package}/1.0.0/lib{package}-1.0.0.jar"),
                "PUT",
            ),
            _ => ("Python-UploadPackage", format!("/{PROJECT}/{}/", repo.name), "POST"),
        };
        self.package(&client, repo, method, &format!("/packages/pkg{package}"), &url, http, UPLOAD)
    }

    fn admin(&mut self) -> io::Result<()> {
        let client = self.world.client(self.rng, Who::Deployer);
        let client = Client {
            agent: GCLOUD_AGENT,
            email: client.email.clone(),
            subject: client.subject.clone(),
            ip: client.ip.clone(),
        };
        let repo = &REPOS[self.rng.below(REPOS.len() as u64) as usize];
        let (rpc, action) = match self.rng.below(3) {
            0 | 1 => ("ListDockerImages", LIST),
            _ => ("GetRepository", OTHER),
        };
        let method = format!("google.devtools.artifactregistry.v1.ArtifactRegistry.{rpc}");
        self.entry(&Call {
            client: &client,
            method: &method,
            status: None,
            repo,
            resource_tail: "",
            permission: if rpc == "GetRepository" {
                "artifactregistry.repositories.get"
            } else {
                "artifactregistry.repositories.list"
            },
            permission_type: "ADMIN_READ",
            request: Request::Api(rpc),
            action,
        })
    }

    /// A pull refused: no permission (7), or a token that is not valid (16). Still a pull.
    fn refused(&mut self) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let client = world.client(rng, Who::Person);
        let image = world.image(rng);
        let tag = *rng.pick(&image.tags);
        let status = if rng.chance(0.7) {
            (
                7,
                "Permission 'artifactregistry.repositories.downloadArtifacts' denied on resource (or it may not exist).",
            )
        } else {
            (16, "Request had invalid authentication credentials.")
        };
        let url = format!("{}/manifests/{tag}", Self::v2(image));
        self.docker(client, image, "Docker-GetManifest", "GET", &url, Some(status), false, PULL)
    }

    /// The cleanup policy deleting an old tag and its manifest.
    fn cleanup(&mut self) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let client = world.client(rng, Who::ServiceAgent);
        let image = world.image(rng);
        let tag = *rng.pick(&image.tags);
        let base = Self::v2(image);
        let manifest = rng.pick(&image.manifests).clone();
        self.docker(
            client,
            image,
            "Docker-DeleteTag",
            "DELETE",
            &format!("{base}/manifests/{tag}"),
            None,
            true,
            DELETE,
        )?;
        self.docker(
            client,
            image,
            "Docker-DeleteManifest",
            "DELETE",
            &format!("{base}/manifests/{manifest}"),
            None,
            true,
            DELETE,
        )
    }

    /// Rate-limited (8) or unavailable (14), then the retry that succeeds.
    fn rate_limited(&mut self) -> io::Result<()> {
        let (world, rng) = (self.world, &mut *self.rng);
        let client = world.client(rng, Who::Node);
        let image = world.image(rng);
        let status = if rng.chance(0.6) {
            (8, "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per region'.")
        } else {
            (14, "The service is currently unavailable.")
        };
        let url = format!("{}/manifests/{}", Self::v2(image), image.index);
        self.docker(client, image, "Docker-GetManifest", "GET", &url, Some(status), false, PULL)?;
        self.docker(client, image, "Docker-GetManifest", "GET", &url, None, false, PULL)
    }
}

fn agent_of(format: Format) -> &'static str {
    match format {
        Format::Npm => NPM_AGENT,
        Format::Maven => MAVEN_AGENT,
        Format::Python => PIP_AGENT,
        Format::Go => GO_AGENT,
        Format::Apt => APT_AGENT,
        Format::Yum => YUM_AGENT,
        Format::Docker => DOCKER_AGENTS[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcr_usage_core::ObjectRef;
    use gcr_usage_core::audit::AuditLogReader;

    /// The reader finds exactly what the generator planted, and the bytes depend on the seed only.
    #[test]
    fn the_reader_counts_what_the_generator_wrote() {
        let mut bytes = Vec::new();
        let stats = write_audit_log(&mut bytes, 40 << 20, DEFAULT_SEED).unwrap();
        assert_eq!(stats.bytes, bytes.len() as u64);
        let source = ObjectRef { bucket: AUDIT_BUCKET.into(), name: AUDIT_OBJECT.into(), generation: Some(1) };
        let mut reader = AuditLogReader::new(bytes.as_slice(), source, 16_384, 0);
        let mut actions = [0u64; 8];
        while let Some((action, micros)) = reader.next_event(|e| (e.action as usize, e.time_micros)).unwrap() {
            actions[action] += 1;
            assert!((HOUR_START_SECS * 1_000_000..(HOUR_START_SECS + 3600) * 1_000_000).contains(&micros));
        }
        let read = reader.stats();
        assert_eq!(
            (read.entries, read.events, read.skipped, read.malformed, read.duplicates),
            (stats.entries, stats.events, stats.skipped, stats.malformed, stats.duplicates)
        );
        assert_eq!(actions, stats.actions);
        assert!(stats.duplicates > 0 && stats.malformed > 0 && stats.skipped > 0, "{stats:?}");
        let per_entry = stats.bytes / stats.entries;
        assert!((1_200..=1_900).contains(&per_entry), "{per_entry} bytes per entry");
        let mut again = Vec::new();
        write_audit_log(&mut again, 40 << 20, DEFAULT_SEED).unwrap();
        assert_eq!(again, bytes);
    }
}
