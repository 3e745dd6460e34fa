//! Synthetic, realistic Cloud Storage usage logs for benchmarks and tests.
//!
//! [`write_log`] writes a usage log of at least `target_bytes` bytes, deterministically for a
//! seed (its own SplitMix64: no dependency, the same bytes on every machine). The shape follows
//! `shared/reference/gcs-usage-logs.md` and the fixture logs: the documented header, every value
//! double-quoted (numbers too, `""` when empty), commas inside quoted user agents, Google's
//! `,gzip(gfe)` suffix, records not sorted by time and a few from the previous hour. Line ends
//! are LF by default ([`LineEnd::CrLf`] on request): the reference documents neither as *the*
//! form and the fixtures hold both.
//!
//! The traffic is modelled, not sampled at random per row:
//! - a world of registry buckets (`gcr.io`, `us.`/`eu.`/`asia.gcr.io`, the vanity `k8s.gcr.io`,
//!   a domain-scoped project), nested repositories, images made of a config blob and layers (base
//!   layers shared between images), image popularity following a Zipf-like law;
//! - a population of client machines (documentation addresses, some IPv6) each with one client
//!   and version: docker, containerd, cri-o, podman / containers-image, skopeo, buildkit, kaniko,
//!   crane, ko, trivy, and scripts (python-requests, curl) that send no Referer;
//! - **pulls**: a machine fetches the config and the layers it has not cached, each blob GET
//!   carrying `https://HOST/v2/REPOSITORY/blobs/DIGEST` as Referer (Go clients follow the
//!   registry's redirect); some containerd HEADs first; range GETs (206), a few 304s, and
//!   failures (404, 403, 401, 5xx followed by the client's retry);
//! - **pushes** (blob PUTs), GCR's **internal traffic** (scanners and housekeeping from Google
//!   Cloud addresses, no Referer, generic or empty user agents, metadata reads and listings),
//!   legacy v1 objects (`containers/repositories/…`, `containers/images/<v1 id>/json`: object
//!   reads that are no blob), the owner's **administration** (gcloud / gsutil through the JSON
//!   API, old `storage.*` operation names, XML `?acl`, the Cloud Console), Object Lifecycle
//!   deletes, and a release bucket's downloads and signed-URL uploads;
//! - rare defects real files have: object names in **invalid UTF-8**, a record written
//!   **twice** (same `s_request_id`, a few records later), and **malformed** records (a record
//!   cut short, an extra column, a number that is not one). [`SynthStats`] counts each exactly,
//!   so a test can hold the reader to them.
//!
//! One real log object covers one source bucket; this log mixes several buckets' traffic in one
//! file (as `cat` of several objects without their repeated headers would) so that one file
//! exercises every classification path. Addresses are from RFC 5737 / RFC 3849 for clients and
//! from Google Cloud ranges for Google-side callers; digests and request ids are random.

use std::io::{self, Write};

use crate::rng::Rng;

use gcr_usage_core::usage::reader::HEADER_LINE;

/// The seed the benchmark and the tests use.
pub const DEFAULT_SEED: u64 = 0x6763_725f_7573_6167;

/// 2024-03-11T14:00:00Z: the hour the records describe (the fixtures' hour).
pub const HOUR_START_MICROS: i64 = 1_710_165_600_000_000;

const HOUR_MICROS: i64 = 3_600_000_000;

/// Defects, per generated session (a session is one pull, push, admin action …).
const MALFORMED_PER_SESSION: f64 = 1.0 / 4000.0;
const INVALID_UTF8_PER_SESSION: f64 = 1.0 / 3000.0;
/// Per good record: the chance that it is written a second time a few records later.
const DUPLICATE_PER_ROW: f64 = 1.0 / 2000.0;

/// Line end of every line, header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    Lf,
    CrLf,
}

impl LineEnd {
    fn bytes(self) -> &'static [u8] {
        match self {
            LineEnd::Lf => b"\n",
            LineEnd::CrLf => b"\r\n",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthOptions {
    /// Writing stops at the end of the session (a pull, a push …) that reaches this many bytes.
    pub target_bytes: u64,
    pub seed: u64,
    pub line_end: LineEnd,
}

/// What was written. `rows` = every data record after the header, so a reader reports
/// `records == rows` and hands out `rows - malformed - duplicates` rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthStats {
    /// Data records, malformed ones and second copies included.
    pub rows: u64,
    /// Bytes written, header included.
    pub bytes: u64,
    /// Records that are not valid rows (wrong column count, a bad number).
    pub malformed: u64,
    /// Second copies of an earlier record (same `s_request_id`).
    pub duplicates: u64,
    /// Good records (first copies) holding invalid UTF-8.
    pub invalid_utf8: u64,
}

impl SynthStats {
    /// Rows a reader that drops duplicates hands out.
    pub fn good_rows(&self) -> u64 {
        self.rows - self.malformed - self.duplicates
    }
}

/// Writes a synthetic usage log of at least `target_bytes` bytes with LF line ends.
pub fn write_log<W: Write>(writer: W, target_bytes: u64, seed: u64) -> io::Result<SynthStats> {
    write_log_with(writer, SynthOptions { target_bytes, seed, line_end: LineEnd::Lf })
}

/// Writes a synthetic usage log as `options` say. Pass a buffered writer: records are written
/// one `write_all` each.
pub fn write_log_with<W: Write>(writer: W, options: SynthOptions) -> io::Result<SynthStats> {
    let mut rng = Rng::new(options.seed);
    let world = World::new(&mut rng);
    let mut g = Gen {
        rng,
        world,
        out: Out {
            writer,
            line_end: options.line_end.bytes(),
            line: Vec::with_capacity(2048),
            recent: Vec::new(),
            next_recent: 0,
            stats: SynthStats::default(),
            target: options.target_bytes,
            id: String::with_capacity(72),
        },
    };
    g.out.writer.write_all(HEADER_LINE.as_bytes())?;
    g.out.writer.write_all(g.out.line_end)?;
    g.out.stats.bytes = (HEADER_LINE.len() + g.out.line_end.len()) as u64;
    while g.out.stats.bytes < g.out.target {
        g.session()?;
    }
    g.out.writer.flush()?;
    Ok(g.out.stats)
}

// ---------------------------------------------------------------------------------------------
// Randomness

// The draws only this generator makes; the rest are `crate::rng::Rng`'s.
impl Rng {
    /// Roughly log-uniform in `[lo, hi]` (sizes spanning orders of magnitude): a uniform octave,
    /// then uniform within it. Integer arithmetic only (no libm), so the same on every platform.
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let octaves = (hi / lo).ilog2().max(1);
        let base = lo << self.range(0, u64::from(octaves) - 1);
        self.range(base, (base * 2).min(hi))
    }
}

// ---------------------------------------------------------------------------------------------
// The world: buckets, images, clients

struct Bucket {
    name: &'static str,
    /// The host registry clients name in the Referer.
    referer_host: &'static str,
    /// The repository path's leading components (the project, or `DOMAIN/PROJECT`).
    repo_prefix: &'static str,
    repos: &'static [&'static str],
    weight: u32,
}

const APP_REPOS: &[&str] = &[
    "app",
    "api",
    "web/frontend",
    "team/api/server",
    "batch/worker",
    "ml/training/gpu/trainer",
    "tools/ci/runner",
    "base/debian-slim",
    "infra/monitoring/node-exporter",
    "payments/ledger",
    "search/indexer",
    "data/etl/spark-job",
];

const K8S_REPOS: &[&str] = &[
    "pause",
    "kube-proxy",
    "kube-apiserver",
    "etcd",
    "coredns/coredns",
    "ingress-nginx/controller",
    "metrics-server/metrics-server",
    "sig-storage/csi-provisioner",
];

const BUCKETS: &[Bucket] = &[
    Bucket {
        name: "artifacts.demo-project.appspot.com",
        referer_host: "gcr.io",
        repo_prefix: "demo-project",
        repos: APP_REPOS,
        weight: 28,
    },
    Bucket {
        name: "us.artifacts.demo-project.appspot.com",
        referer_host: "us.gcr.io",
        repo_prefix: "demo-project",
        repos: APP_REPOS,
        weight: 14,
    },
    Bucket {
        name: "eu.artifacts.demo-project.appspot.com",
        referer_host: "eu.gcr.io",
        repo_prefix: "demo-project",
        repos: APP_REPOS,
        weight: 10,
    },
    Bucket {
        name: "artifacts.acme-prod.appspot.com",
        referer_host: "gcr.io",
        repo_prefix: "acme-prod",
        repos: APP_REPOS,
        weight: 14,
    },
    Bucket {
        name: "asia.artifacts.acme-prod.appspot.com",
        referer_host: "asia.gcr.io",
        repo_prefix: "acme-prod",
        repos: APP_REPOS,
        weight: 6,
    },
    Bucket {
        name: "us.artifacts.k8s-artifacts-prod.appspot.com",
        referer_host: "k8s.gcr.io",
        repo_prefix: "",
        repos: K8S_REPOS,
        weight: 16,
    },
    Bucket {
        name: "eu.artifacts.ml-platform-412.appspot.com",
        referer_host: "eu.gcr.io",
        repo_prefix: "ml-platform-412",
        repos: APP_REPOS,
        weight: 6,
    },
    Bucket {
        name: "artifacts.corp-tools.example.com.a.appspot.com",
        referer_host: "gcr.io",
        repo_prefix: "example.com/corp-tools",
        repos: APP_REPOS,
        weight: 6,
    },
];

/// An ordinary bucket logging into the same place: release downloads and uploads.
const RELEASE_BUCKET: &str = "demo-project-release-artifacts";

struct Blob {
    digest: String,
    size: u64,
}

struct Image {
    bucket: usize,
    /// Full repository path as clients name it.
    repository: String,
    config: usize,
    layers: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Docker,
    Containerd,
    CriO,
    Podman,
    ContainersImage,
    Skopeo,
    Buildkit,
    Kaniko,
    Crane,
    Ko,
    Trivy,
    Script,
}

impl Kind {
    /// Go clients send the redirecting registry URL as Referer; scripts send none.
    fn sends_referer(self) -> bool {
        self != Kind::Script
    }

    fn pushes(self) -> bool {
        matches!(self, Kind::Docker | Kind::Podman | Kind::Buildkit | Kind::Kaniko | Kind::Crane | Kind::Ko)
    }
}

struct Machine {
    ip: String,
    ip_type: u8,
    kind: Kind,
    user_agent: String,
}

struct World {
    blobs: Vec<Blob>,
    images: Vec<Image>,
    /// Cumulative popularity weights of `images` (Zipf-like), for binary search.
    popularity: Vec<f64>,
    machines: Vec<Machine>,
    /// Indexes of the machines whose client can push.
    pushers: Vec<usize>,
    /// Google Cloud addresses: Cloud Build, scanners, the registry's housekeeping.
    google_ips: Vec<(String, u8)>,
    /// The owners' workstations.
    owner_ips: Vec<String>,
    bucket_weights: Vec<(usize, u32)>,
    /// Release bucket objects: (name, size).
    release_objects: Vec<(String, u64)>,
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let mut blobs = Vec::new();
        // Base layers shared between images (debian, alpine, distroless, python, …).
        let bases: Vec<usize> = (0..24)
            .map(|_| {
                blobs.push(Blob { digest: rng.digest(), size: rng.log_uniform(700_000, 90_000_000) });
                blobs.len() - 1
            })
            .collect();
        let mut images = Vec::new();
        for (b, bucket) in BUCKETS.iter().enumerate() {
            let repo_count = rng.range(4, bucket.repos.len() as u64) as usize;
            let mut names: Vec<&str> = bucket.repos.to_vec();
            for i in 0..repo_count {
                let j = i + rng.index(names.len() - i);
                names.swap(i, j);
            }
            for name in &names[..repo_count] {
                let repository = if bucket.repo_prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{}/{name}", bucket.repo_prefix)
                };
                let base = &bases[rng.index(bases.len())..];
                let base = base[..base.len().min(2)].to_vec();
                // A few versions (tags) of the image: new config, some new layers.
                for _ in 0..rng.range(1, 4) {
                    blobs.push(Blob { digest: rng.digest(), size: rng.range(1_400, 16_000) });
                    let config = blobs.len() - 1;
                    let mut layers = base.clone();
                    for _ in 0..rng.range(1, 7) {
                        let size = if rng.chance(0.6) {
                            rng.log_uniform(300, 600_000)
                        } else {
                            rng.log_uniform(1_000_000, 400_000_000)
                        };
                        blobs.push(Blob { digest: rng.digest(), size });
                        layers.push(blobs.len() - 1);
                    }
                    images.push(Image { bucket: b, repository: repository.clone(), config, layers });
                }
            }
        }
        // Popularity: a random rank per image, weight 1/(rank+1), scaled by the bucket's weight.
        let mut ranks: Vec<usize> = (0..images.len()).collect();
        for i in 0..ranks.len() {
            let j = i + rng.index(ranks.len() - i);
            ranks.swap(i, j);
        }
        let mut total = 0.0;
        let popularity = images
            .iter()
            .zip(&ranks)
            .map(|(image, rank)| {
                total += f64::from(BUCKETS[image.bucket].weight) / (*rank as f64 + 1.0);
                total
            })
            .collect();

        let machines: Vec<Machine> = (0..3000).map(|_| machine(rng)).collect();
        let pushers = machines.iter().enumerate().filter(|(_, m)| m.kind.pushes()).map(|(i, _)| i).collect();
        let google_ips = (0..200)
            .map(|_| {
                if rng.chance(0.2) {
                    (format!("2600:1900:4000:{:x}::{:x}", rng.range(1, 0xffff), rng.range(1, 0xfff)), 2)
                } else {
                    // 34.64.0.0/10 and 35.184.0.0–35.239.255.255 are Google Cloud's.
                    let (first, second) =
                        if rng.chance(0.5) { (34, rng.range(64, 127)) } else { (35, rng.range(184, 239)) };
                    (format!("{first}.{second}.{}.{}", rng.range(0, 255), rng.range(1, 254)), 1)
                }
            })
            .collect();
        let owner_ips =
            vec!["198.51.100.77".into(), "198.51.100.78".into(), "2001:db8:77::1".into(), "192.0.2.10".into()];
        let bucket_weights = BUCKETS.iter().enumerate().map(|(i, b)| (i, b.weight)).collect();
        let mut release_objects = Vec::new();
        for version in ["v1.2.3", "v1.3.0", "v1.4.0-rc.1"] {
            for platform in ["linux-amd64", "linux-arm64", "darwin-arm64", "windows-amd64"] {
                release_objects.push((format!("{version}/tool-{platform}.tar.gz"), rng.range(8_000_000, 60_000_000)));
            }
        }
        World { blobs, images, popularity, machines, pushers, google_ips, owner_ips, bucket_weights, release_objects }
    }

    fn popular_image(&self, rng: &mut Rng) -> &Image {
        let total = self.popularity.last().copied().unwrap_or(1.0);
        let x = rng.f64() * total;
        let i = self.popularity.partition_point(|&c| c <= x).min(self.images.len() - 1);
        &self.images[i]
    }
}

fn client_ip(rng: &mut Rng) -> (String, u8) {
    if rng.chance(0.12) {
        (format!("2001:db8:{:x}:{:x}::{:x}", rng.range(1, 0xffff), rng.range(0, 0xffff), rng.range(1, 0xffff)), 2)
    } else {
        let net = *rng.pick(&["192.0.2", "198.51.100", "203.0.113"]);
        (format!("{net}.{}", rng.range(1, 254)), 1)
    }
}

fn machine(rng: &mut Rng) -> Machine {
    const KINDS: [(Kind, u32); 12] = [
        (Kind::Containerd, 34),
        (Kind::Docker, 26),
        (Kind::CriO, 8),
        (Kind::Podman, 3),
        (Kind::ContainersImage, 4),
        (Kind::Skopeo, 2),
        (Kind::Buildkit, 4),
        (Kind::Kaniko, 5),
        (Kind::Crane, 4),
        (Kind::Ko, 1),
        (Kind::Trivy, 2),
        (Kind::Script, 3),
    ];
    let kind = *rng.weighted(&KINDS);
    let (ip, ip_type) = client_ip(rng);
    let mut ua = match kind {
        Kind::Docker => {
            let (v, go, commit) = *rng.pick(&[
                ("20.10.24", "1.19.7", "5d6db84"),
                ("23.0.6", "1.19.9", "9dbdbd4"),
                ("24.0.7", "1.20.10", "311b9ff"),
                ("25.0.3", "1.21.6", "f417435"),
                ("26.1.4", "1.21.11", "de5c9cf"),
            ]);
            let (kernel, arch, os) = *rng.pick(&[
                ("6.5.0-21-generic", "amd64", "linux"),
                ("5.15.0-105-generic", "amd64", "linux"),
                ("6.6.16-linuxkit", "arm64", "darwin"),
                ("5.15.133.1-microsoft-standard-WSL2", "amd64", "windows"),
                ("5.10.205-195.807.amzn2.x86_64", "amd64", "linux"),
            ]);
            format!(
                "docker/{v} go/go{go} git-commit/{commit} kernel/{kernel} os/linux arch/{arch} \
                 UpstreamClient(Docker-Client/{v} \\({os}\\))"
            )
        }
        Kind::Containerd => rng
            .pick(&["containerd/v1.7.13", "containerd/v1.6.28", "containerd/1.6.28-k3s2", "containerd/1.7.11-gke.0"])
            .to_string(),
        Kind::CriO => format!("cri-o/{} go/go1.20.10 os/linux arch/amd64", rng.pick(&["1.28.1", "1.29.2", "1.27.4"])),
        Kind::Podman => format!("libpod/{}", rng.pick(&["4.9.3", "5.0.2", "4.6.1"])),
        Kind::ContainersImage => {
            format!("containers/{} (github.com/containers/image)", rng.pick(&["5.29.2", "5.30.1", "5.24.2"]))
        }
        Kind::Skopeo => format!("skopeo/{}", rng.pick(&["1.14.2", "1.13.3"])),
        Kind::Buildkit => format!("buildkit/{}", rng.pick(&["v0.12.5", "v0.13.1"])),
        Kind::Kaniko => format!("kaniko/{}, go-containerregistry/v0.19.0", rng.pick(&["v1.21.0", "v1.22.0", "v1.9.2"])),
        Kind::Crane => {
            let v = rng.pick(&["v0.19.1", "v0.20.0"]);
            format!("crane/{v} go-containerregistry/{v}")
        }
        Kind::Ko => "ko/v0.15.1 go-containerregistry/v0.19.0".to_string(),
        Kind::Trivy => format!("trivy/{}", rng.pick(&["0.49.1", "0.50.0"])),
        Kind::Script => {
            rng.pick(&["python-requests/2.31.0", "curl/8.5.0", "Wget/1.21.4", "Go-http-client/1.1"]).to_string()
        }
    };
    ua.push_str(",gzip(gfe)");
    Machine { ip, ip_type, kind, user_agent: ua }
}

// ---------------------------------------------------------------------------------------------
// Writing records

/// One record's fields, borrowed; numbers are written as quoted decimals.
struct Rec<'a> {
    time: i64,
    ip: &'a str,
    ip_type: u8,
    method: &'a str,
    uri: &'a [u8],
    status: u16,
    cs_bytes: u64,
    sc_bytes: u64,
    taken: u64,
    host: &'a str,
    referer: &'a str,
    user_agent: &'a str,
    operation: &'a str,
    bucket: &'a str,
    object: &'a [u8],
}

struct Out<W> {
    writer: W,
    line_end: &'static [u8],
    line: Vec<u8>,
    /// The last good records (for second copies), a ring.
    recent: Vec<Vec<u8>>,
    next_recent: usize,
    stats: SynthStats,
    target: u64,
    /// The request id of the record being written.
    id: String,
}

const RECENT: usize = 64;

fn quoted(line: &mut Vec<u8>, value: &[u8]) {
    line.push(b'"');
    for &b in value {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.extend_from_slice(b"\",");
}

fn quoted_number(line: &mut Vec<u8>, n: impl std::fmt::Display) {
    // Writing into a Vec cannot fail.
    let _ = write!(line, "\"{n}\",");
}

impl<W: Write> Out<W> {
    /// Builds the record's line (without its line end) into `self.line`.
    fn build(&mut self, r: &Rec<'_>) {
        let line = &mut self.line;
        line.clear();
        quoted_number(line, r.time);
        quoted(line, r.ip.as_bytes());
        quoted_number(line, r.ip_type);
        quoted(line, b"");
        quoted(line, r.method.as_bytes());
        quoted(line, r.uri);
        quoted_number(line, r.status);
        quoted_number(line, r.cs_bytes);
        quoted_number(line, r.sc_bytes);
        quoted_number(line, r.taken);
        quoted(line, r.host.as_bytes());
        quoted(line, r.referer.as_bytes());
        quoted(line, r.user_agent.as_bytes());
        quoted(line, self.id.as_bytes());
        quoted(line, r.operation.as_bytes());
        quoted(line, r.bucket.as_bytes());
        quoted(line, r.object);
        line.pop(); // the last comma
    }

    fn write_line(&mut self) -> io::Result<()> {
        self.writer.write_all(&self.line)?;
        self.writer.write_all(self.line_end)?;
        self.stats.bytes += (self.line.len() + self.line_end.len()) as u64;
        self.stats.rows += 1;
        Ok(())
    }

    /// Writes a good record, maybe followed later by a second copy.
    fn emit(&mut self, rng: &mut Rng, r: &Rec<'_>) -> io::Result<()> {
        request_id(rng, &mut self.id);
        self.build(r);
        self.write_line()?;
        if std::str::from_utf8(r.object).is_err() || std::str::from_utf8(r.uri).is_err() {
            self.stats.invalid_utf8 += 1;
        }
        // A second copy of an earlier record (the ring holds only first copies).
        if !self.recent.is_empty() && rng.chance(DUPLICATE_PER_ROW) {
            let i = rng.index(self.recent.len());
            std::mem::swap(&mut self.line, &mut self.recent[i]);
            let written = self.write_line();
            std::mem::swap(&mut self.line, &mut self.recent[i]);
            written?;
            self.stats.duplicates += 1;
            self.build(r); // `line` held the copy: rebuild for the ring below
        }
        if self.recent.len() < RECENT {
            self.recent.push(self.line.clone());
        } else {
            let slot = &mut self.recent[self.next_recent];
            slot.clear();
            slot.extend_from_slice(&self.line);
            self.next_recent = (self.next_recent + 1) % RECENT;
        }
        Ok(())
    }

    /// Writes a record that is not a valid row.
    fn emit_malformed(&mut self, rng: &mut Rng, r: &Rec<'_>) -> io::Result<()> {
        request_id(rng, &mut self.id);
        self.build(r);
        match rng.index(5) {
            // Cut short: the last column is missing.
            0 => {
                let cut = self.line.iter().rposition(|&b| b == b',').unwrap_or(0);
                self.line.truncate(cut);
            }
            // An extra column.
            1 => self.line.extend_from_slice(b",\"\""),
            // Numbers that are not numbers.
            2 => replace_first(&mut self.line, &format!("\"{}\"", r.status), "\"2OO\""),
            3 => replace_first(&mut self.line, &format!("\"{}\",", r.time), "\"\","),
            _ => {
                let (cs, sc) = (r.cs_bytes, r.sc_bytes);
                let negative = format!(",\"{cs}\",\"-{}\",", sc.max(1));
                replace_first(&mut self.line, &format!(",\"{cs}\",\"{sc}\","), &negative);
            }
        }
        self.write_line()?;
        self.stats.malformed += 1;
        Ok(())
    }
}

/// Replaces the first `from` in `line` (which must hold it) by `to`.
fn replace_first(line: &mut Vec<u8>, from: &str, to: &str) {
    let at = line.windows(from.len()).position(|w| w == from.as_bytes());
    let at = at.unwrap_or_else(|| panic!("{from:?} not in {:?}", String::from_utf8_lossy(line)));
    line.splice(at..at + from.len(), to.bytes());
}

/// A request id shaped like real ones: `ADPyc` + 66 base64url characters (71 in all).
fn request_id(rng: &mut Rng, id: &mut String) {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    id.clear();
    id.push_str("ADPyc");
    let mut bits = 0u64;
    for i in 0..66 {
        if i % 10 == 0 {
            bits = rng.next_u64();
        }
        id.push(B64[(bits & 63) as usize] as char);
        bits >>= 6;
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions: what clients do

struct Gen<W> {
    rng: Rng,
    world: World,
    out: Out<W>,
}

#[derive(Debug, Clone, Copy)]
enum Session {
    Pull,
    Internal,
    Push,
    Legacy,
    Release,
    Admin,
    Lifecycle,
    OwnerRead,
}

const SESSIONS: [(Session, u32); 8] = [
    (Session::Pull, 620),
    (Session::Internal, 110),
    (Session::Push, 50),
    (Session::Legacy, 30),
    (Session::Release, 70),
    (Session::Admin, 70),
    (Session::Lifecycle, 25),
    (Session::OwnerRead, 25),
];

/// Blob transfer time: a fixed part plus the size at 20–150 MB/s.
fn transfer_micros(rng: &mut Rng, bytes: u64) -> u64 {
    rng.range(600, 4_000) + bytes * 1_000_000 / rng.range(20_000_000, 150_000_000)
}

fn blob_object(digest: &str) -> String {
    format!("containers/images/{digest}")
}

/// XML API path of an object; sometimes with the digest's colon percent-encoded.
fn xml_uri(rng: &mut Rng, bucket: &str, object: &str) -> String {
    if rng.chance(0.05) { format!("/{bucket}/{}", object.replace(':', "%3A")) } else { format!("/{bucket}/{object}") }
}

impl<'a> Rec<'a> {
    /// A successful, empty XML-API `GET_Object` of `object` without Referer or user agent:
    /// sessions override what differs.
    fn get(time: i64, (ip, ip_type): (&'a str, u8), bucket: &'a str, uri: &'a [u8], object: &'a [u8]) -> Rec<'a> {
        Rec {
            time,
            ip,
            ip_type,
            method: "GET",
            uri,
            status: 200,
            cs_bytes: 0,
            sc_bytes: 0,
            taken: 1_000,
            host: "storage.googleapis.com",
            referer: "",
            user_agent: "",
            operation: "GET_Object",
            bucket,
            object,
        }
    }
}

const GSUTIL: &str = "apitools gsutil/5.27 Python/3.11.8 (linux) google-cloud-sdk/465.0.0 analytics/disabled,gzip(gfe)";
const OLD_GSUTIL: &str = "apitools gsutil/4.21 Python/2.7.12 (linux2) google-cloud-sdk/126.0.0 analytics/disabled";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 \
                      Safari/537.36,gzip(gfe)";
const CONSOLE: &str = "https://console.cloud.google.com/";

/// `containers/images/sha256:…` as the JSON API's path segment.
fn json_object(object: &str) -> String {
    object.replace('/', "%2F").replace(':', "%3A")
}

impl<W: Write> Gen<W> {
    /// Session start time: where the file is in its hour, jittered (records are not sorted),
    /// now and then a record of the previous hour.
    fn now(&mut self) -> i64 {
        let progress = self.out.stats.bytes as f64 / self.out.target.max(1) as f64;
        let mut t = HOUR_START_MICROS + (progress.min(1.0) * (HOUR_MICROS - 120_000_000) as f64) as i64;
        t += self.rng.range(0, 90_000_000) as i64;
        if self.rng.chance(0.004) {
            t -= self.rng.range(60_000_000, HOUR_MICROS as u64 - 1) as i64;
        }
        t
    }

    fn session(&mut self) -> io::Result<()> {
        if self.rng.chance(MALFORMED_PER_SESSION) {
            return self.malformed();
        }
        if self.rng.chance(INVALID_UTF8_PER_SESSION) {
            return self.invalid_utf8();
        }
        match *self.rng.weighted(&SESSIONS) {
            Session::Pull => self.pull(),
            Session::Internal => self.internal(),
            Session::Push => self.push(),
            Session::Legacy => self.legacy(),
            Session::Release => self.release(),
            Session::Admin => self.admin(),
            Session::Lifecycle => self.lifecycle(),
            Session::OwnerRead => self.owner_read(),
        }
    }

    /// A client pulls an image: the config and the layers it has not cached, one GET each,
    /// with the registry's redirect URL as Referer (Go clients).
    fn pull(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let machine = &world.machines[rng.index(world.machines.len())];
        let image = world.popular_image(rng);
        let (bucket, host) = (BUCKETS[image.bucket].name, BUCKETS[image.bucket].referer_host);
        let cold = rng.chance(0.35); // a fresh node: nothing cached
        let mut t = start;
        let blobs = std::iter::once(image.config).chain(image.layers.iter().copied());
        for (n, b) in blobs.enumerate() {
            if n > 0 && !cold && rng.chance(0.55) {
                continue; // layer already cached
            }
            let blob = &world.blobs[b];
            let object = blob_object(&blob.digest);
            let uri = xml_uri(rng, bucket, &object);
            let referer = if machine.kind.sends_referer() {
                format!("https://{host}/v2/{}/blobs/{}", image.repository, blob.digest)
            } else {
                String::new()
            };
            let mut rec = Rec {
                referer: &referer,
                user_agent: &machine.user_agent,
                ..Rec::get(t, (&machine.ip, machine.ip_type), bucket, uri.as_bytes(), object.as_bytes())
            };
            if n == 0 && machine.kind == Kind::Containerd && rng.chance(0.1) {
                let taken = rng.range(900, 3_000);
                out.emit(rng, &Rec { method: "HEAD", operation: "GET_Object_Metadata", taken, ..rec })?;
                t += rng.range(20_000, 80_000) as i64;
            }
            let r = rng.f64();
            let (status, bytes) = match r {
                _ if r < 0.012 => (404, rng.range(250, 330)),
                _ if r < 0.016 => (403, rng.range(300, 360)),
                _ if r < 0.018 => (401, 285),
                _ if r < 0.022 => (*rng.pick(&[500, 502, 503]), rng.range(150, 400)),
                _ if r < 0.032 => (206, blob.size.min(rng.range(1, 64) << 20)),
                _ if r < 0.034 => (304, 0),
                _ => (200, blob.size),
            };
            rec.status = status;
            rec.sc_bytes = bytes;
            rec.taken = transfer_micros(rng, bytes);
            rec.time = t + rec.taken as i64;
            out.emit(rng, &rec)?;
            if status >= 500 {
                // The client retries after a second.
                rec.status = 200;
                rec.sc_bytes = blob.size;
                rec.taken = transfer_micros(rng, blob.size);
                rec.time += 1_000_000 + rec.taken as i64;
                out.emit(rng, &rec)?;
            }
            if status == 401 || status == 403 {
                break; // the client gives up
            }
            t += rng.range(5_000, 400_000) as i64;
        }
        Ok(())
    }

    /// GCR's own traffic from Google addresses: vulnerability scanning, housekeeping.
    fn internal(&mut self) -> io::Result<()> {
        let mut t = self.now();
        let Gen { rng, world, out } = self;
        let (ip, ip_type) = &world.google_ips[rng.index(world.google_ips.len())];
        let who = (ip.as_str(), *ip_type);
        let user_agent = *rng.pick(&["Go-http-client/2.0,gzip(gfe)", "Go-http-client/1.1,gzip(gfe)", ""]);
        let image = world.popular_image(rng);
        let bucket = BUCKETS[image.bucket].name;
        match rng.index(10) {
            // A scanner reads every blob of an image, without Referer.
            0..=5 => {
                for b in std::iter::once(image.config).chain(image.layers.iter().copied()) {
                    let blob = &world.blobs[b];
                    let object = blob_object(&blob.digest);
                    let uri = format!("/{bucket}/{object}");
                    let (status, sc_bytes) = if rng.chance(0.01) { (404, 300) } else { (200, blob.size) };
                    let taken = transfer_micros(rng, sc_bytes);
                    t += taken as i64;
                    let get = Rec::get(t, who, bucket, uri.as_bytes(), object.as_bytes());
                    out.emit(rng, &Rec { status, sc_bytes, taken, user_agent, ..get })?;
                }
            }
            // Housekeeping: metadata of a few blobs.
            6..=8 => {
                for _ in 0..rng.range(1, 6) {
                    let blob = &world.blobs[*rng.pick(&image.layers)];
                    let object = blob_object(&blob.digest);
                    let uri = format!("/{bucket}/{object}");
                    t += rng.range(1_000, 50_000) as i64;
                    let status = if rng.chance(0.05) { 404 } else { 200 };
                    let taken = rng.range(800, 4_000);
                    let get = Rec::get(t, who, bucket, uri.as_bytes(), object.as_bytes());
                    let head =
                        Rec { method: "HEAD", operation: "GET_Object_Metadata", status, taken, user_agent, ..get };
                    out.emit(rng, &head)?;
                }
            }
            // A listing of the blobs through the JSON API.
            _ => {
                let uri = format!(
                    "/storage/v1/b/{bucket}/o?alt=json&prefix=containers%2Fimages%2F&maxResults=1000&pageToken={}",
                    rng.range(100_000, 999_999)
                );
                let rec = Rec {
                    sc_bytes: rng.range(20_000, 400_000),
                    taken: rng.range(20_000, 200_000),
                    host: "www.googleapis.com",
                    user_agent: "google-api-go-client/0.5,gzip(gfe)",
                    operation: "LIST_Objects",
                    ..Rec::get(t, who, bucket, uri.as_bytes(), b"")
                };
                out.emit(rng, &rec)?;
            }
        }
        Ok(())
    }

    /// A push: new blobs written (a config and a few layers). Whose address such rows carry is
    /// not documented: Cloud Build's kaniko from Google addresses, or a developer's machine.
    fn push(&mut self) -> io::Result<()> {
        let mut t = self.now();
        let Gen { rng, world, out } = self;
        let bucket = BUCKETS[*rng.weighted(&world.bucket_weights)].name;
        let (who, user_agent) = if rng.chance(0.5) {
            let (ip, ip_type) = &world.google_ips[rng.index(world.google_ips.len())];
            ((ip.as_str(), *ip_type), "kaniko/v1.21.0, go-containerregistry/v0.19.0,gzip(gfe)")
        } else {
            let m = &world.machines[world.pushers[rng.index(world.pushers.len())]];
            ((m.ip.as_str(), m.ip_type), m.user_agent.as_str())
        };
        for n in 0..rng.range(2, 5) {
            let digest = rng.digest();
            let size = if n == 0 { rng.range(1_400, 16_000) } else { rng.log_uniform(300, 200_000_000) };
            let object = blob_object(&digest);
            let uri = format!("/{bucket}/{object}");
            let status = if rng.chance(0.01) { 503 } else { 200 };
            let taken = transfer_micros(rng, size);
            t += taken as i64;
            let get = Rec::get(t, who, bucket, uri.as_bytes(), object.as_bytes());
            let put = Rec { method: "PUT", operation: "PUT_Object", status, cs_bytes: size, taken, user_agent, ..get };
            out.emit(rng, &put)?;
        }
        Ok(())
    }

    /// Reads of v1-era objects in a registry bucket: objects, not blobs (no manifest, no digest).
    fn legacy(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let image = world.popular_image(rng);
        let bucket = BUCKETS[image.bucket].name;
        let name = image.repository.rsplit('/').next().unwrap_or("app");
        let mut v1 = String::new();
        rng.hex(&mut v1, 64);
        let object = match rng.index(4) {
            0 => format!("containers/repositories/library/{name}/tag_latest"),
            1 => format!("containers/repositories/library/{name}/_index_images"),
            2 => format!("containers/images/{v1}/json"),
            _ => format!("containers/images/{v1}/ancestry"),
        };
        let uri = format!("/{bucket}/{object}");
        let machine = &world.machines[rng.index(world.machines.len())];
        let (status, sc_bytes) = if rng.chance(0.3) { (404, 290) } else { (200, rng.range(64, 4_000)) };
        let rec = Rec {
            status,
            sc_bytes,
            taken: rng.range(900, 9_000),
            user_agent: "docker/1.13.1 go/go1.7.5 git-commit/092cba3 kernel/4.4.0-116-generic os/linux arch/amd64 \
                         UpstreamClient(Docker-Client/1.13.1 \\(linux\\)),gzip(gfe)",
            ..Rec::get(start, (&machine.ip, machine.ip_type), bucket, uri.as_bytes(), object.as_bytes())
        };
        out.emit(rng, &rec)
    }

    /// An ordinary bucket's traffic: release downloads, signed-URL uploads.
    fn release(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let (name, size) = &world.release_objects[rng.index(world.release_objects.len())];
        let (ip, ip_type) = client_ip(rng);
        let taken = transfer_micros(rng, *size);
        if rng.chance(0.9) {
            let user_agent = *rng.pick(&[
                "curl/8.5.0,gzip(gfe)",
                "Wget/1.21.4,gzip(gfe)",
                "python-requests/2.31.0,gzip(gfe)",
                GSUTIL,
                CHROME,
            ]);
            let (status, sc_bytes) = if rng.chance(0.02) { (404, 310) } else { (200, *size) };
            let uri = format!("/{RELEASE_BUCKET}/{name}");
            let get = Rec::get(start, (&ip, ip_type), RELEASE_BUCKET, uri.as_bytes(), name.as_bytes());
            out.emit(rng, &Rec { status, sc_bytes, taken, user_agent, ..get })
        } else {
            let uri = format!(
                "/{RELEASE_BUCKET}/{name}?GoogleAccessId=release-bot@demo-project.iam.gserviceaccount.com\
                 &Expires={}&Signature=REDACTED",
                1_710_170_000 + rng.range(0, 86_400)
            );
            let get = Rec::get(start, (&ip, ip_type), RELEASE_BUCKET, uri.as_bytes(), name.as_bytes());
            let user_agent = "Java/1.8.0_171,gzip(gfe)";
            out.emit(rng, &Rec { method: "PUT", operation: "PUT_Object", cs_bytes: *size, taken, user_agent, ..get })
        }
    }

    /// The owner administers a registry bucket: gcloud / gsutil through the JSON API (old and
    /// new operation names), the XML API without an operation name, the Cloud Console.
    fn admin(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let bucket = BUCKETS[*rng.weighted(&world.bucket_weights)].name;
        let ip = world.owner_ips[rng.index(world.owner_ips.len())].as_str();
        let who = (ip, if ip.contains(':') { 2 } else { 1 });
        let mut invocation = String::new();
        rng.hex(&mut invocation, 32);
        let gcloud = |command: &str| {
            format!(
                "gcloud/465.0.0 command/gcloud.{command} invocation-id/{invocation} environment/None \
                 environment-version/None client-os/LINUX client-os-ver/6.5.0 client-pltf-arch/x86_64 \
                 interactive/True from-script/False python/3.11.8 term/xterm-256color (Linux 6.5.0-21-generic),gzip(gfe)"
            )
        };
        let image = world.popular_image(rng);
        let object = blob_object(&world.blobs[image.config].digest);
        let json = json_object(&object);
        let denied = rng.chance(0.1);
        let (method, uri, user_agent, operation, on_object, status, sc_bytes, referer) = match rng.index(10) {
            0 => {
                let uri = format!("/storage/v1/b/{bucket}?fields=location%2CstorageClass%2Clogging&alt=json");
                let status = if denied { 401 } else { 200 };
                ("GET", uri, gcloud("storage.buckets.describe"), "GET_Bucket", false, status, 211, "")
            }
            1 => {
                let uri = format!(
                    "/storage/v1/b/{bucket}/o?alt=json&fields=items%2Fname%2CnextPageToken\
                     &prefix=containers%2Fimages%2F&maxResults=1000"
                );
                ("GET", uri, GSUTIL.into(), "LIST_Objects", false, 200, rng.range(1_000, 200_000), "")
            }
            2 => {
                let uri = format!("/storage/v1/b/{bucket}/iam?alt=json");
                let status = if denied { 401 } else { 200 };
                ("GET", uri, GSUTIL.into(), "GET_Bucket_IamPolicy", false, status, 285, "")
            }
            3 => {
                let uri = format!("/storage/v1/b/{bucket}");
                ("GET", uri, OLD_GSUTIL.into(), "storage.buckets.get", false, 200, 640, "")
            }
            // XML API, no operation name: settings and a listing.
            4 => ("GET", format!("/{bucket}?acl"), GSUTIL.into(), "", false, if denied { 403 } else { 200 }, 1_200, ""),
            5 => (
                "GET",
                format!("/{bucket}?prefix=containers%2F&delimiter=%2F"),
                GSUTIL.into(),
                "",
                false,
                200,
                3_400,
                "",
            ),
            6 => {
                let uri = format!("/storage/v1/b/{bucket}/o/{json}");
                let status = if denied { 403 } else { 204 };
                ("DELETE", uri, gcloud("storage.rm"), "DELETE_Object", true, status, 0, "")
            }
            7 => {
                let uri = format!("/storage/v1/b/{bucket}/o/{json}?alt=json");
                ("PATCH", uri, gcloud("storage.objects.update"), "PATCH_Object", true, 200, 900, "")
            }
            // The Console shows the object's metadata (a JSON-API read without alt=media).
            8 => {
                let uri = format!("/storage/v1/b/{bucket}/o/{json}");
                ("GET", uri, CHROME.into(), "storage.objects.get", true, 200, 780, CONSOLE)
            }
            _ => {
                let uri = format!("/storage/v1/b/{bucket}/o?alt=json&prefix=containers%2F");
                ("GET", uri, OLD_GSUTIL.into(), "storage.objects.list", false, 200, rng.range(1_000, 60_000), "")
            }
        };
        let object = if on_object { object.as_bytes() } else { b"" };
        let rec = Rec {
            method,
            status,
            sc_bytes,
            taken: rng.range(9_000, 90_000),
            host: if uri.starts_with("/storage/") { "www.googleapis.com" } else { "storage.googleapis.com" },
            referer,
            user_agent: &user_agent,
            operation,
            ..Rec::get(start, who, bucket, uri.as_bytes(), object)
        };
        out.emit(rng, &rec)
    }

    /// Object Lifecycle Management deletes old blobs.
    fn lifecycle(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let bucket = BUCKETS[*rng.weighted(&world.bucket_weights)].name;
        for i in 0..rng.range(1, 4) {
            let object = blob_object(&rng.digest());
            let uri = format!("/{bucket}/{object}");
            let get =
                Rec::get(start + i as i64 * 40_000, ("192.0.2.200", 1), bucket, uri.as_bytes(), object.as_bytes());
            let rec = Rec {
                method: "DELETE",
                status: 204,
                taken: rng.range(15_000, 60_000),
                user_agent: "GCS Lifecycle Management",
                operation: "DELETE_Object",
                ..get
            };
            out.emit(rng, &rec)?;
        }
        Ok(())
    }

    /// The owner reads a blob with gcloud (JSON API, old operation name), gsutil, or from the
    /// Cloud Console.
    fn owner_read(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let image = world.popular_image(rng);
        let bucket = BUCKETS[image.bucket].name;
        let blob = &world.blobs[image.config];
        let object = blob_object(&blob.digest);
        let (uri, user_agent, referer, operation) = match rng.index(3) {
            0 => (
                format!("/download/storage/v1/b/{bucket}/o/{}?alt=media", json_object(&object)),
                "gcloud/465.0.0 command/gcloud.storage.cp invocation-id/0b3e9c2d5f7a4e1c8d6b2a9f3e5c7d1a,gzip(gfe)",
                "",
                "storage.objects.get",
            ),
            1 => (format!("/{bucket}/{object}"), GSUTIL, "", "GET_Object"),
            _ => (format!("/{bucket}/{object}"), CHROME, CONSOLE, "GET_Object"),
        };
        let get = Rec::get(start, (&world.owner_ips[0], 1), bucket, uri.as_bytes(), object.as_bytes());
        let taken = transfer_micros(rng, blob.size);
        out.emit(rng, &Rec { sc_bytes: blob.size, taken, user_agent, referer, operation, ..get })
    }

    /// An object name that is not UTF-8: a Latin-1 release file, or garbage probing a registry.
    /// `cs_uri` is percent-encoded ASCII; `cs_object` is decoded, so it holds the raw bytes.
    fn invalid_utf8(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let (ip, ip_type) = client_ip(rng);
        let (bucket, object, uri, status, sc_bytes): (&str, &[u8], String, u16, u64) = if rng.chance(0.5) {
            let uri = format!("/{RELEASE_BUCKET}/docs/r%E9sum%E9-%FCbersicht.pdf");
            (RELEASE_BUCKET, b"docs/r\xe9sum\xe9-\xfcbersicht.pdf", uri, 200, rng.range(40_000, 900_000))
        } else {
            let bucket = BUCKETS[*rng.weighted(&world.bucket_weights)].name;
            (bucket, b"containers/images/\xff\xfe", format!("/{bucket}/containers/images/%FF%FE"), 404, 300)
        };
        let get = Rec::get(start, (&ip, ip_type), bucket, uri.as_bytes(), object);
        out.emit(rng, &Rec { status, sc_bytes, user_agent: "curl/8.5.0,gzip(gfe)", ..get })
    }

    /// A record that is not a row: cut short, an extra column, a bad number.
    fn malformed(&mut self) -> io::Result<()> {
        let start = self.now();
        let Gen { rng, world, out } = self;
        let machine = &world.machines[rng.index(world.machines.len())];
        let image = world.popular_image(rng);
        let bucket = BUCKETS[image.bucket].name;
        let blob = &world.blobs[image.config];
        let object = blob_object(&blob.digest);
        let uri = format!("/{bucket}/{object}");
        let get = Rec::get(start, (&machine.ip, machine.ip_type), bucket, uri.as_bytes(), object.as_bytes());
        let rec = Rec { sc_bytes: blob.size, user_agent: &machine.user_agent, ..get };
        out.emit_malformed(rng, &rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcr_usage_core::ObjectRef;
    use gcr_usage_core::registry_event::{Action, CallerClass, Target};
    use gcr_usage_core::usage::{ClientFamily, HeaderKind, UsageLogReader, classify};
    use std::collections::{BTreeMap, BTreeSet};

    const SIZE: u64 = 12 << 20;

    fn generate(target: u64, seed: u64) -> (Vec<u8>, SynthStats) {
        let mut buf = Vec::new();
        let stats = write_log(&mut buf, target, seed).unwrap();
        (buf, stats)
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (a, sa) = generate(1 << 20, 7);
        let (b, sb) = generate(1 << 20, 7);
        assert!(a == b, "same seed, same bytes");
        assert_eq!(sa, sb);
        let (c, _) = generate(1 << 20, 8);
        assert!(a != c, "another seed, other bytes");
        // The size is reached at a record boundary, and is what the stats say.
        assert!(sa.bytes >= 1 << 20 && sa.bytes == a.len() as u64);
        assert!(a.ends_with(b"\n") && a.len() < (1 << 20) + (64 << 10));
        assert!(a.starts_with(HEADER_LINE.as_bytes()));
    }

    #[test]
    fn crlf_files_read_the_same() {
        let mut lf = Vec::new();
        let mut crlf = Vec::new();
        let opt = SynthOptions { target_bytes: 1 << 20, seed: 3, line_end: LineEnd::Lf };
        let s1 = write_log_with(&mut lf, opt).unwrap();
        let s2 = write_log_with(&mut crlf, SynthOptions { line_end: LineEnd::CrLf, ..opt }).unwrap();
        assert!(crlf.windows(2).filter(|w| w == b"\r\n").count() as u64 == s2.rows + 1);
        let count = |data: &[u8]| {
            let mut reader = UsageLogReader::new(data);
            while reader.next_row().unwrap().is_some() {}
            reader.into_stats()
        };
        let (r1, r2) = (count(&lf), count(&crlf));
        assert_eq!(r1.records, s1.rows);
        assert_eq!(r2.records, s2.rows);
    }

    #[test]
    fn the_reader_finds_exactly_the_planted_defects() {
        let (data, stats) = generate(SIZE, DEFAULT_SEED);
        assert!(stats.malformed > 0 && stats.duplicates > 0 && stats.invalid_utf8 > 0, "{stats:?}");
        let mut reader = UsageLogReader::new(data.as_slice());
        let mut rows = 0;
        while reader.next_row().unwrap().is_some() {
            rows += 1;
        }
        let read = reader.into_stats();
        assert_eq!(read.header, HeaderKind::Documented);
        assert_eq!(read.repeated_headers, 0);
        assert_eq!(read.records, stats.rows, "{read:?}");
        assert_eq!(read.malformed, stats.malformed, "{:?}", read.malformed_samples);
        assert_eq!(read.duplicates, stats.duplicates);
        assert_eq!(read.invalid_utf8, stats.invalid_utf8);
        assert_eq!((rows, read.rows), (stats.good_rows(), stats.good_rows()));
    }

    #[test]
    fn classification_gives_a_registry_mix() {
        let (data, _) = generate(SIZE, DEFAULT_SEED);
        let source = ObjectRef { bucket: "demo-gcr-logs".into(), name: "synthetic".into(), generation: Some(1) };
        let mut reader = UsageLogReader::new(data.as_slice());
        let mut actions: BTreeMap<String, u64> = BTreeMap::new();
        let (mut total, mut pulls, mut attributed, mut failed) = (0u64, 0u64, 0u64, 0u64);
        let (mut hosts, mut families, mut callers, mut targets) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut nested = false;
        while let Some(row) = reader.next_row().unwrap() {
            let e = classify(&row, &source);
            total += 1;
            *actions.entry(format!("{:?}", e.action)).or_default() += 1;
            if e.action == Action::Pull {
                pulls += 1;
                attributed += u64::from(e.repository.is_some());
            }
            nested |= e.repository.is_some_and(|r| r.matches('/').count() >= 3);
            failed += u64::from(!e.success);
            hosts.extend(e.registry_host.map(str::to_string));
            families.insert(format!("{:?}", e.client_family));
            callers.insert(format!("{:?}", e.caller_class));
            targets.insert(format!("{:?}", e.target));
        }
        let share = |a: &str| actions.get(a).copied().unwrap_or(0) as f64 / total as f64;
        assert!((0.55..0.9).contains(&share("Pull")), "{actions:?}");
        for a in ["Push", "Download", "Upload", "Delete", "List", "Admin", "Other"] {
            assert!(share(a) > 0.0005, "{a}: {actions:?}");
        }
        assert!(attributed as f64 > 0.7 * pulls as f64, "{attributed} of {pulls} pulls attributed");
        assert!(nested, "a nested repository path");
        assert!((0.01..0.1).contains(&(failed as f64 / total as f64)), "{failed} of {total} failed");
        assert_eq!(hosts.into_iter().collect::<Vec<_>>(), ["asia.gcr.io", "eu.gcr.io", "gcr.io", "us.gcr.io"]);
        for f in [
            ClientFamily::Docker,
            ClientFamily::Containerd,
            ClientFamily::CriO,
            ClientFamily::Podman,
            ClientFamily::ContainersImage,
            ClientFamily::Kaniko,
            ClientFamily::Crane,
            ClientFamily::Gcloud,
            ClientFamily::Gsutil,
            ClientFamily::Browser,
            ClientFamily::Lifecycle,
            ClientFamily::HttpClient,
            ClientFamily::None,
        ] {
            assert!(families.contains(&format!("{f:?}")), "{f:?} in {families:?}");
        }
        for c in [CallerClass::EndUser, CallerClass::OwnerAdmin, CallerClass::GoogleInternalOrAutomation] {
            assert!(callers.contains(&format!("{c:?}")), "{c:?}");
        }
        for t in [Target::Blob, Target::Object, Target::Bucket] {
            assert!(targets.contains(&format!("{t:?}")), "{t:?}");
        }
    }
}
