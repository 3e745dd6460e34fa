//! The usage logs the scenarios load: the repository's fixture and larger logs grown from it.

/// The object of `fixtures/events/cloudevent-binary.json`, and of every scenario.
pub const BUCKET: &str = "demo-gcr-logs";
pub const USAGE_NAME: &str = "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0";
pub const USAGE_GENERATION: u64 = 1_710_170_135_482_117;

/// `fixtures/logs/` of the workspace.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/logs")
}

/// The fixture usage log (14 registry requests from `artifacts.demo-project.appspot.com`).
pub fn fixture_log() -> Vec<u8> {
    let path = fixtures_dir().join(USAGE_NAME);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture's data rows repeated until the log is about `bytes` long, each copy with a fresh
/// request id (the 14th field) so deduplication keeps every one. Returns the log and its rows.
pub fn grown_log(bytes: usize) -> (Vec<u8>, usize) {
    let text = String::from_utf8(fixture_log()).expect("the fixture is UTF-8");
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().expect("a header"));
    let rows: Vec<&str> = lines.collect();
    let mut n = 0;
    while out.len() < bytes {
        let mut fields: Vec<String> = rows[n % rows.len()].split("\",\"").map(str::to_string).collect();
        fields[13] = format!("{}-{n}", fields[13]);
        out.push_str(&fields.join("\",\""));
        out.push('\n');
        n += 1;
    }
    (out.into_bytes(), n)
}

/// A usage log's header line and nothing else (an hour without requests).
pub fn header_only_log() -> Vec<u8> {
    let log = fixture_log();
    let end = log.iter().position(|&b| b == b'\n').expect("a header line") + 1;
    log[..end].to_vec()
}

/// `fixtures/audit/sink/`' hourly sink object (40 lines: 35 Artifact Registry events, 2 entries
/// of another service, 2 malformed lines, 1 duplicate; see `fixtures/audit/README.md`).
pub fn audit_sink_log() -> Vec<u8> {
    let path =
        fixtures_dir().join("../audit/sink/cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
