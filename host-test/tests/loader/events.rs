//! Event shapes: each fixture event loads its object; non-finalize events and non-log objects are
//! ignored without a single outbound request; log names route to the right table.

use gcr_usage_fake_google::logs::fixture_log;
use gcr_usage_host_test::{FakeGoogle, FakeUpstream, TestRequest, google};
use serde_json::json;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn every_fixture_shape_submits_one_insert_and_answers_loaded() {
    for (file, name, generation, shape) in FIXTURES {
        let up = loads(1184);
        let h = harness(&up);
        let r = h.handle(fixture_request(file)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_loaded(&r, name, Some(generation), 1184);
        assert_eq!(log_line(&r)["eventShape"], shape, "{file}");
        assert_eq!(r.run.outbound.len(), 1, "{file}: only jobs.insert, nothing else");
        let job_id = expected_job_id(BUCKET, name, Some(generation), USAGE_DEST, 1);
        assert_insert(&r.run.outbound[0], &format!("gs://{BUCKET}/{name}"), "usage", &job_id);
        up.assert_all_matched();
    }
}

#[tokio::test(start_paused = true)]
async fn the_fixture_job_id_is_stable_across_releases() {
    // Changing the id rule would make every redelivery after an upgrade load its object twice.
    let literal =
        "gcr_usage_accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0_g1710170135482117_42c710e61e9c8bb3";
    assert_eq!(expected_job_id(BUCKET, USAGE_NAME, Some(USAGE_GEN), USAGE_DEST, 1), literal, "the README's rule");
    let r = harness(&loads(1)).handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!(r.json()["jobId"], literal);
}

#[tokio::test(start_paused = true)]
async fn pubsub_payload_format_none_takes_the_object_from_the_attributes() {
    let mut event = fixture("pubsub-push.json");
    let message = event["message"].as_object_mut().unwrap();
    message.remove("data");
    message["attributes"]["payloadFormat"] = "NONE".into();
    let (_, name, generation, _) = FIXTURES[2];
    let up = loads(3);
    let r = harness(&up).handle(TestRequest::post_json("/", &event)).await.unwrap();
    assert_loaded(&r, name, Some(generation), 3);
    assert_eq!(log_line(&r)["eventShape"], "pubsub-push");
    assert_eq!(inserts(&r.run).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn flattened_legacy_events_and_integer_generations_load_too() {
    let data = fixture("legacy-background.json")["data"].clone();
    let (_, name, generation, _) = FIXTURES[3];
    let flat = json!({"eventId": "1", "eventType": "google.storage.object.finalize", "resource": "x", "data": data});
    let up = loads(5);
    let r = harness(&up).handle(TestRequest::post_json("/", &flat)).await.unwrap();
    assert_loaded(&r, name, Some(generation), 5);
    assert_eq!(log_line(&r)["eventShape"], "legacy-function");

    let mut bare = object(BUCKET, USAGE_NAME, None);
    bare["generation"] = json!(42);
    let up = loads(1);
    let r = harness(&up).handle(TestRequest::post_json("/", &bare)).await.unwrap();
    assert_loaded(&r, USAGE_NAME, Some(42), 1);
}

#[tokio::test(start_paused = true)]
async fn an_event_without_a_generation_loads_under_the_live_generations_job_id() {
    // One object, two events — one naming its generation, one not (a bare POST): one job id,
    // so the second is a duplicate, never a second load (issue 9).
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).replies([google::job_done_echo(14), google::duplicate_job_echo()]));
    up.route(google::jobs_get_rule(PROJECT).reply(google::job_done_echo(14)));
    let google = FakeGoogle::new();
    google.object(BUCKET, USAGE_NAME, USAGE_GEN, fixture_log());
    google.install(&up);
    let h = harness(&up);
    let named = h.handle(bare(BUCKET, USAGE_NAME, Some(USAGE_GEN))).await.unwrap();
    let unnamed = h.handle(bare(BUCKET, USAGE_NAME, None)).await.unwrap();
    let (a, b) = (named.json(), unnamed.json());
    assert_eq!((named.status, &a["outcome"]), (200, &json!("loaded")), "{a}");
    assert_eq!((unnamed.status, &b["outcome"]), (200, &json!("duplicate")), "{b}");
    assert_eq!(a["jobId"], b["jobId"]);
    assert_eq!(b["object"]["generation"], USAGE_GEN.to_string(), "the answer names the generation it loaded");
    let lookup = &unnamed.run.outbound[0];
    assert_eq!(
        lookup.url,
        format!("https://storage.googleapis.com/storage/v1/b/{BUCKET}/o/{USAGE_NAME}?fields=generation")
    );
    // An object that no longer exists: nothing to load, said as bad input (4xx).
    let r = h.handle(bare(BUCKET, "accessLog_usage_2024_03_11_15_00_00_00cbe51e4b703105e9_v0", None)).await.unwrap();
    assert_error(
        &r,
        400,
        "invalid-input",
        "generation: the event names none, and gs://demo-gcr-logs/accessLog_usage_2024_03_11_15",
    );
    assert_eq!(r.run.outbound.len(), 1, "no job for a missing object");
}

/// Every delivery shape's delete / archive / metadata-update event, with the `reason` expected.
fn non_finalize_events() -> Vec<(&'static str, TestRequest, String)> {
    let object = fixture("cloudevent-binary.json")["body"].clone();
    let mut out = Vec::new();
    for t in ["deleted", "archived", "metadataUpdated"] {
        let ce_type = format!("google.cloud.storage.object.v1.{t}");
        out.push(("cloudevent-binary", binary_event(&ce_type, &object), ce_type.clone()));
        let mut structured = fixture("cloudevent-structured.json");
        structured["type"] = ce_type.clone().into();
        let req = TestRequest::post("/", structured.to_string()).header("content-type", "application/cloudevents+json");
        out.push(("cloudevent-structured", req, ce_type));
    }
    for t in ["OBJECT_DELETE", "OBJECT_ARCHIVE", "OBJECT_METADATA_UPDATE"] {
        let mut pubsub = fixture("pubsub-push.json");
        pubsub["message"]["attributes"]["eventType"] = t.into();
        out.push(("pubsub-push", TestRequest::post_json("/", &pubsub), t.to_string()));
        let message = pubsub["message"].as_object_mut().unwrap();
        message.remove("data");
        message["attributes"]["payloadFormat"] = "NONE".into();
        out.push(("pubsub-push", TestRequest::post_json("/", &pubsub), t.to_string()));
    }
    for t in ["delete", "archive", "metadataUpdate"] {
        let event_type = format!("google.storage.object.{t}");
        let mut legacy = fixture("legacy-background.json");
        legacy["context"]["eventType"] = event_type.clone().into();
        out.push(("legacy-function", TestRequest::post_json("/", &legacy), event_type.clone()));
        let flat = json!({"eventType": event_type, "data": legacy["data"].clone()});
        out.push(("legacy-function", TestRequest::post_json("/", &flat), event_type));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn non_finalize_events_of_every_shape_are_ignored_without_outbound_requests() {
    let events = non_finalize_events();
    assert_eq!(events.len(), 18);
    for (shape, request, event_type) in events {
        let h = harness(&FakeUpstream::new());
        let r = h.handle(request).await.unwrap();
        let body = r.json();
        assert_eq!((r.status, body["outcome"].as_str()), (200, Some("ignored")), "{shape}: {body}");
        assert_eq!(body["reason"], format!("event type {event_type} is not a new object"), "{shape}");
        assert_eq!(body["object"]["bucket"], BUCKET, "{shape}: the object is still reported");
        assert!(body.get("jobId").is_none());
        assert!(r.run.outbound.is_empty(), "{shape}: {:?}", r.run.outbound);
        let line = log_line(&r);
        assert_eq!((line["severity"].as_str(), line["eventShape"].as_str()), (Some("INFO"), Some(shape)));
    }
}

#[tokio::test(start_paused = true)]
async fn objects_that_are_not_logs_are_ignored_with_a_reason() {
    let not_a_log_name = "not a usage or storage log object name (PREFIX_usage|storage_YYYY_MM_DD_HH_00_00_ID_vN)";
    let cases: [(&str, &str); 9] = [
        // The seed loaded anything whose name merely contained "usage".
        ("usage-report.csv", not_a_log_name),
        ("usage-reports/summary.csv", not_a_log_name),
        ("reports/monthly_usage_summary_2024_03_11.csv", not_a_log_name),
        ("accessLog_usage_2024_03_11_14_00_00_00cbe5_v0.tmp", "log version suffix \"v0.tmp\" is not v<number>"),
        ("accessLog_usage_2024_03_11_14_00_00_00CBE5_v0", "shard id \"00CBE5\" is not lower-case hex"),
        ("accessLog_usage_2024_02_30_14_00_00_00cbe5_v0", "2024-02-30 14:00 is not a valid log hour"),
        ("accessLog_usage_2024_03_11_14_30_00_00cbe5_v0", "log hour must end in _00_00"),
        ("accessLog_usages_2024_03_11_14_00_00_00cbe5_v0", "not a usage or storage log object (found \"usages\""),
        ("a*b_usage_2024_03_11_14_00_00_00cbe5_v0", "object names containing * cannot be loaded by URI"),
    ];
    for (name, reason) in cases {
        let r = harness(&FakeUpstream::new()).handle(bare(BUCKET, name, Some(1))).await.unwrap();
        let body = r.json();
        assert_eq!((r.status, body["outcome"].as_str()), (200, Some("ignored")), "{name}: {body}");
        assert!(body["reason"].as_str().unwrap().starts_with(reason), "{name}: {body}");
        assert_eq!(body["object"], object_json(BUCKET, name, Some(1)));
        assert!(r.run.outbound.is_empty(), "{name}");
        assert_eq!(log_line(&r)["eventShape"], "object-resource");
    }
}

#[tokio::test(start_paused = true)]
async fn log_names_route_by_their_kind_field_not_by_words_in_the_prefix() {
    let cases = [
        ("us.artifacts.k8s_usage_prod.appspot.com_usage_2024_02_29_23_00_00_ab_v0", "usage"),
        ("my_storage_logs_usage_2024_01_01_00_00_00_0_v12", "usage"),
        ("my_usage_logs_storage_2024_01_01_07_00_00_0655cc_v0", "storage"),
        ("logs/2024/accessLog_usage_2024_01_01_00_00_00_ff_v0", "usage"),
        ("_usage_2024_03_11_14_00_00_00cbe5_v0", "usage"),
    ];
    for (name, table) in cases {
        let up = loads(2);
        let r = harness(&up).handle(bare(BUCKET, name, Some(9))).await.unwrap();
        let body = r.json();
        let destination = format!("{PROJECT}:storageanalysis.{table}");
        let job_id = expected_job_id(BUCKET, name, Some(9), &destination, 1);
        assert_eq!((r.status, &body["outcome"], &body["logKind"]), (200, &json!("loaded"), &json!(table)), "{name}");
        assert_eq!((&body["destination"], &body["jobId"]), (&json!(destination), &json!(job_id)), "{name}");
        let insert = assert_insert(&r.run.outbound[0], &format!("gs://{BUCKET}/{name}"), table, &job_id);
        let labels = &insert["configuration"]["labels"];
        assert_eq!((&labels["loader"], &labels["log_kind"]), (&json!("gcr-usage"), &json!(table)), "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn storage_logs_go_to_the_storage_table_with_the_storage_schema() {
    let up = loads(1);
    let r = harness(&up).handle(bare(BUCKET, STORAGE_NAME, Some(7))).await.unwrap();
    let body = r.json();
    let job_id = expected_job_id(BUCKET, STORAGE_NAME, Some(7), STORAGE_DEST, 1);
    assert_eq!(
        body,
        json!({"outcome": "loaded", "object": object_json(BUCKET, STORAGE_NAME, Some(7)), "logKind": "storage",
               "destination": STORAGE_DEST, "jobId": job_id, "rows": 1})
    );
    let insert = assert_insert(&r.run.outbound[0], &format!("gs://{BUCKET}/{STORAGE_NAME}"), "storage", &job_id);
    let fields = &insert["configuration"]["load"]["schema"]["fields"];
    assert_eq!(
        fields,
        &json!([{"name": "bucket", "type": "STRING", "mode": "REQUIRED"},
                {"name": "storage_byte_hours", "type": "INTEGER", "mode": "REQUIRED"}])
    );

    // A configured table name changes destination and job id alike.
    let up = loads(1);
    let h = harness(&up).env("GCR_USAGE_STORAGE_TABLE", "sizes").env("GCR_USAGE_DATASET", "gcs_logs");
    let r = h.handle(bare(BUCKET, STORAGE_NAME, Some(7))).await.unwrap();
    let destination = "demo-project:gcs_logs.sizes";
    assert_eq!(r.json()["destination"], destination);
    assert_eq!(r.json()["jobId"], expected_job_id(BUCKET, STORAGE_NAME, Some(7), destination, 1));
    let table = &r.run.outbound[0].body_json()["configuration"]["load"]["destinationTable"];
    assert_eq!(table, &json!({"projectId": PROJECT, "datasetId": "gcs_logs", "tableId": "sizes"}));
}

#[tokio::test(start_paused = true)]
async fn usage_loads_carry_the_official_schema_and_dispositions() {
    let up = loads(1);
    let r = harness(&up).handle(fixture_request("bare-object.json")).await.unwrap();
    let load = r.run.outbound[0].body_json()["configuration"]["load"].clone();
    let names: Vec<&str> =
        load["schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    let header =
        std::fs::read_to_string(gcr_usage_host_test::workspace_root().join("fixtures/logs").join(FIXTURES[4].1))
            .unwrap();
    let columns: Vec<String> =
        header.lines().next().unwrap().split(',').map(|c| c.trim_matches('"').to_string()).collect();
    assert_eq!(names, columns, "schema columns are the log file's columns, in order");
    for (k, v) in [
        ("sourceFormat", json!("CSV")),
        ("skipLeadingRows", json!(1)),
        ("createDisposition", json!("CREATE_IF_NEEDED")),
        ("writeDisposition", json!("WRITE_APPEND")),
    ] {
        assert_eq!(load[k], v, "{k}");
    }
}

#[tokio::test(start_paused = true)]
async fn healthz_answers_ok_and_is_not_logged() {
    for method in [http::Method::GET, http::Method::HEAD] {
        let r = harness(&FakeUpstream::new()).handle(TestRequest::new(method.clone(), "/healthz")).await.unwrap();
        assert_eq!(r.status, 200, "{method}");
        if method == http::Method::GET {
            assert_eq!(r.json(), json!({"status": "ok"}));
        }
        assert!(r.run.stdout.is_empty(), "health checks are not logged: {}", r.run.stdout_str());
        assert!(r.run.outbound.is_empty());
    }
}

/// The answer a loaded event gets does not depend on the path it was POSTed to.
#[tokio::test(start_paused = true)]
async fn events_may_be_posted_to_any_path() {
    for path in ["/", "/events", "/gcr-usage?source=eventarc"] {
        let up = loads(1);
        let mut request = fixture_request("bare-object.json");
        request.path = path.into();
        let r = harness(&up).handle(request).await.unwrap();
        assert_loaded(&r, FIXTURES[4].1, Some(FIXTURES[4].2), 1);
    }
}

/// CloudEvents HTTP binding 1.0.2 §1.3: the receiver picks the mode from `Content-Type`
/// (`application/cloudevents…` → structured), and §3.2.3: a structured message MAY also carry
/// the binary-mode `ce-*` headers. `trigger_event::parse_event` checks for `ce-*` headers first, so such a
/// message is parsed as binary mode: the whole envelope is taken for the object resource and the
/// answer is 400 `bucket: is missing`.
#[tokio::test(start_paused = true)]
async fn structured_cloudevents_with_mirrored_ce_headers_are_structured() {
    let event = fixture("cloudevent-structured.json");
    let mut request =
        TestRequest::post("/", event.to_string()).header("content-type", "application/cloudevents+json; charset=utf-8");
    for attribute in ["specversion", "id", "source", "type"] {
        request = request.header(&format!("ce-{attribute}"), event[attribute].as_str().unwrap());
    }
    let (_, name, generation, _) = FIXTURES[1];
    let r = harness(&loads(1)).handle(request).await.unwrap();
    assert_loaded(&r, name, Some(generation), 1);
    assert_eq!(log_line(&r)["eventShape"], "cloudevent-structured");
}
