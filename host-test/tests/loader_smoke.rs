//! The real loader component runs under the harness: it links against the harness's WASI +
//! wasi:http host, both exports are callable, and neither traps on a trivial call. (The
//! loader's behaviour is tested elsewhere; this only guards the harness/component seam.)

use gcr_usage_host_test::{Harness, TestRequest, object_ref};

#[tokio::test(start_paused = true)]
async fn real_loader_links_and_answers_both_exports_without_trapping() {
    let h = Harness::new();
    let r = h.handle(TestRequest::get("/healthz")).await.expect("incoming-handler must not trap");
    assert!(r.status < 600, "{r:?}");
    let r = h.call_load(object_ref("", "", None)).await.expect("load must not trap");
    assert!(r.result.is_err(), "an empty object ref is not loadable: {:?}", r.result);
    h.fake_upstream().assert_all_matched();
}
