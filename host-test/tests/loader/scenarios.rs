//! The shared scenarios ([`gcr_usage_fake_google::scenario::scenarios`]) played twice — by the
//! core natively and by the component in the harness, against the same fake — each delivery
//! checked against the scenario's expectation and the two hosts against each other: the same
//! answer, the same requests in the same order, the same bytes uploaded.

use gcr_usage_fake_google::scenario::{Observed, Scenario, scenarios};
use gcr_usage_host_test::{FakeGoogle, FakeUpstream, Harness, TestRequest, native};

async fn component(scenario: &Scenario) -> Vec<Observed> {
    let google = FakeGoogle::from(scenario.google());
    let up = FakeUpstream::new();
    google.install(&up);
    let mut seen = Vec::new();
    for n in 0..scenario.deliveries.len() {
        let mut harness = Harness::new().upstream(up.clone()).seed(n as u64 + 1).fuel(u64::MAX / 4);
        for (name, value) in scenario.config() {
            harness = harness.env(name, value);
        }
        let r = harness.handle(TestRequest::post_json("/", &scenario.event())).await.expect("no trap");
        seen.push(scenario.observe(r.status, r.json(), &mut google.lock()));
    }
    assert!(up.unmatched().is_empty(), "{}: requests the fake does not model: {:?}", scenario.name, up.unmatched());
    seen
}

fn natively(scenario: &Scenario) -> Vec<Observed> {
    let mut google = scenario.google();
    let mut seen = Vec::new();
    for n in 0..scenario.deliveries.len() {
        let (status, body) = native::deliver(scenario, n as u64, &mut google);
        seen.push(scenario.observe(status, body, &mut google));
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn every_scenario_comes_to_the_same_answers_natively_and_in_the_component() {
    let mut failures = Vec::new();
    for scenario in scenarios() {
        let (native, wasm) = (natively(&scenario), component(&scenario).await);
        for (n, (a, b)) in native.iter().zip(&wasm).enumerate() {
            let checks = [
                scenario.check(n, a).map_err(|e| format!("native: {e}")),
                scenario.check(n, b).map_err(|e| format!("component: {e}")),
                scenario.agree(a, b),
            ];
            failures.extend(checks.into_iter().filter_map(Result::err));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n\n{}", failures.len(), failures.join("\n\n"));
}
