//! What the harness's Spin imitation decides for one manifest, its variables and one outbound URL,
//! so that `e2e/test_spin.py` can hold the imitation to a real `spin up` case by case:
//!
//!     spin_policy MANIFEST URL [NAME=VALUE ...]
//!
//! prints one JSON object: `{"starts": bool, "start_error": …, "allowed": bool, "unresolved": …}` —
//! whether `spin up` would start (the manifest's checks with defaults, the required variables),
//! and if so whether a request to URL would be let out, and why the whole list denies if it does.
//! Not a test by itself; exit code 2 on bad arguments.

use std::process::ExitCode;

use gcr_usage_host_test::spin::{SpinManifest, SpinVariables};
use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [manifest, url, variables @ ..] = args.as_slice() else {
        eprintln!("usage: spin_policy MANIFEST URL [NAME=VALUE ...]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(manifest) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{manifest}: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(url) = url.parse::<http::Uri>() else {
        eprintln!("not a URL: {url}");
        return ExitCode::from(2);
    };
    let answer = match SpinManifest::parse(&text) {
        Err(why) => json!({"starts": false, "start_error": why}),
        Ok(manifest) => {
            let mut values = SpinVariables::new(&manifest);
            for pair in variables {
                let Some((name, value)) = pair.split_once('=') else {
                    eprintln!("not NAME=VALUE: {pair}");
                    return ExitCode::from(2);
                };
                values.provide(name, value);
            }
            match values.check_required() {
                Err(why) => json!({"starts": false, "start_error": why}),
                Ok(()) => {
                    let policy = values.outbound_policy();
                    json!({"starts": true, "allowed": policy.allows(&url), "unresolved": policy.unresolved()})
                }
            }
        }
    };
    println!("{answer}");
    ExitCode::SUCCESS
}
