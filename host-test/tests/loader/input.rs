//! Bad input: every malformed event is a 400 naming the field; size, method and bucket rules;
//! object names that need escaping still give valid job ids and correctly encoded URLs.

use base64::Engine as _;
use gcr_usage_host_test::{FakeUpstream, TestRequest};
use serde_json::{Value, json};

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pubsub(attributes: Value, data: Option<String>) -> TestRequest {
    let mut message = json!({"attributes": attributes, "messageId": "1"});
    if let Some(d) = data {
        message["data"] = d.into();
    }
    TestRequest::post_json("/", &json!({"message": message, "subscription": "projects/p/subscriptions/s"}))
}

fn structured(mutate: impl FnOnce(&mut Value)) -> TestRequest {
    let mut v = fixture("cloudevent-structured.json");
    mutate(&mut v);
    TestRequest::post("/", v.to_string()).header("content-type", "application/cloudevents+json")
}

fn legacy(mutate: impl FnOnce(&mut Value)) -> TestRequest {
    let mut v = fixture("legacy-background.json");
    mutate(&mut v);
    TestRequest::post_json("/", &v)
}

fn raw(body: &str) -> TestRequest {
    TestRequest::post("/", body).header("content-type", "application/json")
}

/// Every malformed event, with the start of the `reason` it must get (the field comes first).
pub fn malformed_events() -> Vec<(TestRequest, &'static str)> {
    let finalize = json!({"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1"});
    let none = |extra: Value| {
        let mut a = json!({"eventType": "OBJECT_FINALIZE", "payloadFormat": "NONE"});
        a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        a
    };
    let long_name = format!("{}_usage_2024_03_11_14_00_00_00cbe5_v0", "x".repeat(1025 - 36));
    let ce_body = fixture("cloudevent-binary.json")["body"].clone();
    vec![
        // Not JSON, or not an object.
        (raw("{"), "body: is not valid JSON"),
        (raw("{\"bucket\": \"demo-gcr-logs\", \"name\": \"x\""), "body: is not valid JSON"),
        (TestRequest::post("/", vec![0xff, 0xfe, b'{']), "body: is not valid JSON"),
        (raw(""), "body: is empty"),
        (raw("  \n"), "body: is empty"),
        (raw("[]"), "body: must be a JSON object, not an array"),
        (raw("\"gs://demo-gcr-logs/x\""), "body: must be a JSON object, not a string"),
        (raw("null"), "body: must be a JSON object, not null"),
        // JSON of the wrong shape.
        (raw("{\"foo\": 1}"), "body: JSON of an unrecognised shape"),
        (raw("{}"), "body: JSON of an unrecognised shape"),
        // Bare object resource: bucket, name, generation, kind.
        (raw(r#"{"name": "n"}"#), "bucket: is missing"),
        (raw(r#"{"bucket": "", "name": "n"}"#), "bucket: must not be empty"),
        (raw(r#"{"bucket": null, "name": "n"}"#), "bucket: is missing"),
        (raw(r#"{"bucket": 5, "name": "n"}"#), "bucket: must be a string, not a number"),
        (raw(r#"{"bucket": "Bad Bucket", "name": "n"}"#), "bucket: \"Bad Bucket\" is not a valid Cloud Storage bucket"),
        (raw(r#"{"bucket": "demo-gcr-logs"}"#), "name: is missing"),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": ""}"#), "name: must not be empty"),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": ["n"]}"#), "name: must be a string, not an array"),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": "a\nb"}"#), "name: contains a line break"),
        (bare(BUCKET, &long_name, Some(1)), "name: is 1025 bytes long"),
        (
            raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": "12a"}"#),
            "generation: \"12a\" is not a decimal",
        ),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": ""}"#), "generation: \"\" is not a decimal"),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": "-1"}"#), "generation: \"-1\" is not a decimal"),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": -1}"#), "generation: \"-1\" is not a decimal"),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": 1.5}"#), "generation: \"1.5\" is not a decimal"),
        (
            raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": "0x10"}"#),
            "generation: \"0x10\" is not a decimal",
        ),
        (raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": " 7"}"#), "generation: \" 7\" is not a decimal"),
        (
            raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": "99999999999999999999"}"#),
            "generation: 99999999999999999999 is out of range",
        ),
        (
            raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": "9223372036854775808"}"#),
            "generation: 9223372036854775808 is out of range: Cloud Storage generations are int64",
        ),
        (
            raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": 18446744073709551615}"#),
            "generation: 18446744073709551615 is out of range: Cloud Storage generations are int64",
        ),
        (
            raw(r#"{"bucket": "demo-gcr-logs", "name": "n", "generation": true}"#),
            "generation: must be a decimal integer",
        ),
        (
            raw(r#"{"kind": "storage#bucket", "bucket": "demo-gcr-logs", "name": "n"}"#),
            "kind: \"storage#bucket\" is not",
        ),
        // Structured CloudEvents.
        (structured(|v| drop(v.as_object_mut().unwrap().remove("data"))), "data: is missing"),
        (structured(|v| v["data"] = "x".into()), "data: must be the object resource (a JSON object), not a string"),
        (structured(|v| drop(v["data"].as_object_mut().unwrap().remove("bucket"))), "data.bucket: is missing"),
        (structured(|v| v["data"]["name"] = "".into()), "data.name: must not be empty"),
        (structured(|v| v["data"]["generation"] = "g1".into()), "data.generation: \"g1\" is not a decimal"),
        (structured(|v| v["specversion"] = "0.3".into()), "specversion: CloudEvents spec version \"0.3\""),
        (structured(|v| drop(v.as_object_mut().unwrap().remove("id"))), "id: is missing"),
        (structured(|v| drop(v.as_object_mut().unwrap().remove("source"))), "source: is missing"),
        (structured(|v| drop(v.as_object_mut().unwrap().remove("type"))), "type: is missing"),
        (structured(|v| v["type"] = "com.example.other".into()), "type: unsupported CloudEvent type"),
        // Binary CloudEvents.
        (binary_event("google.cloud.storage.object.v1.finalized", &json!("x")).body("{"), "body: is not valid JSON"),
        (binary_event("google.cloud.storage.object.v1.finalized", &json!({"bucket": BUCKET})), "name: is missing"),
        (
            binary_event("google.cloud.pubsub.topic.v1.messagePublished", &ce_body),
            "ce-type: unsupported CloudEvent type",
        ),
        // Pub/Sub push.
        (raw(r#"{"message": "hello"}"#), "message: must be a JSON object"),
        (pubsub(json!({}), Some(b64(b"{}"))), "message.attributes.eventType: is missing"),
        (pubsub(json!("attrs"), None), "message.attributes: must be an object, not a string"),
        (pubsub(finalize.clone(), Some("!!! not base64 !!!".into())), "message.data: is not valid base64"),
        (pubsub(finalize.clone(), Some("eyJidWNrZXQiOi".into())), "message.data: is not valid base64"),
        (pubsub(finalize.clone(), Some(b64(b"not json"))), "message.data: does not decode to JSON"),
        (pubsub(finalize.clone(), Some(b64(b"[1]"))), "message.data: decodes to an array"),
        (pubsub(finalize.clone(), Some(String::new())), "message.data: is empty"),
        (pubsub(finalize.clone(), None), "message.data: is empty"),
        (pubsub(finalize.clone(), Some(b64(br#"{"bucket": "demo-gcr-logs"}"#))), "message.data.name: is missing"),
        (pubsub(none(json!({})), None), "message.attributes.bucketId: is missing"),
        (pubsub(none(json!({"bucketId": BUCKET})), None), "message.attributes.objectId: is missing"),
        (pubsub(none(json!({"bucketId": BUCKET, "objectId": ""})), None), "message.attributes.objectId: must not be"),
        (
            pubsub(none(json!({"bucketId": BUCKET, "objectId": "o", "objectGeneration": "abc"})), None),
            "message.attributes.objectGeneration: \"abc\" is not a decimal",
        ),
        (
            pubsub(none(json!({"bucketId": "A B", "objectId": "o"})), None),
            "message.attributes.bucketId: \"A B\" is not",
        ),
        (
            pubsub(json!({"eventType": "OBJECT_FINALIZE", "payloadFormat": "XML"}), None),
            "message.attributes.payloadFormat",
        ),
        (pubsub(json!({"eventType": "OBJECT_CREATE"}), None), "message.attributes.eventType: unsupported notification"),
        // Cloud Functions (gen1) events.
        (legacy(|v| v["context"] = "x".into()), "context: must be an object, not a string"),
        (legacy(|v| drop(v["context"].as_object_mut().unwrap().remove("eventType"))), "context.eventType: is missing"),
        (
            legacy(|v| v["context"]["eventType"] = "providers/cloud.storage/eventTypes/object.change".into()),
            "context.eventType: unsupported",
        ),
        (legacy(|v| drop(v.as_object_mut().unwrap().remove("data"))), "data: is missing"),
        (legacy(|v| v["data"]["bucket"] = "".into()), "data.bucket: must not be empty"),
        (raw(r#"{"eventType": 7, "data": {}}"#), "eventType: is missing or not a string"),
    ]
}

#[tokio::test(start_paused = true)]
async fn malformed_events_are_400_naming_the_field_without_outbound_requests() {
    for (request, reason) in malformed_events() {
        let h = harness(&FakeUpstream::new());
        let r = h.handle(request.clone()).await.unwrap_or_else(|e| panic!("{reason}: {e}"));
        assert_error(&r, 400, "invalid-input", reason);
        assert!(r.run.outbound.is_empty(), "{reason}");
    }
}

#[tokio::test(start_paused = true)]
async fn binary_cloudevents_need_every_ce_header() {
    for header in ["ce-specversion", "ce-id", "ce-source", "ce-type"] {
        let mut fixture = fixture("cloudevent-binary.json");
        fixture["headers"].as_object_mut().unwrap().remove(header);
        let request = with_headers(TestRequest::post("/", fixture["body"].to_string()), &fixture["headers"]);
        let r = harness(&FakeUpstream::new()).handle(request).await.unwrap();
        assert_error(&r, 400, "invalid-input", &format!("{header}: required CloudEvent header is missing"));

        fixture["headers"][header] = " ".into();
        let request = with_headers(TestRequest::post("/", fixture["body"].to_string()), &fixture["headers"]);
        let r = harness(&FakeUpstream::new()).handle(request).await.unwrap();
        assert_error(&r, 400, "invalid-input", &format!("{header}: CloudEvent header is empty"));
    }
    let bad_version = binary_event("google.cloud.storage.object.v1.finalized", &json!({}));
    let mut bad_version = bad_version.clone();
    bad_version.headers.retain(|(k, _)| k != "ce-specversion");
    let r = harness(&FakeUpstream::new()).handle(bad_version.header("ce-specversion", "0.3")).await.unwrap();
    assert_error(&r, 400, "invalid-input", "ce-specversion: CloudEvents spec version \"0.3\" is not supported");
}

const MIB: usize = 1024 * 1024;

/// A bare object event padded with spaces to exactly `len` bytes.
fn padded_event(len: usize) -> Vec<u8> {
    let mut body = object(BUCKET, USAGE_NAME, Some(1)).to_string().into_bytes();
    body.resize(len, b' ');
    body
}

#[tokio::test(start_paused = true)]
async fn bodies_over_one_mib_are_413_with_or_without_content_length() {
    let too_large = "event bodies are limited to 1048576 bytes";
    let cases = [
        ("no content-length", TestRequest::post("/", padded_event(MIB + 1))),
        ("no content-length, 3 MiB", TestRequest::post("/", padded_event(3 * MIB))),
        (
            "content-length",
            TestRequest::post("/", padded_event(MIB + 1)).header("content-length", &(MIB + 1).to_string()),
        ),
        ("declared only", TestRequest::post("/", padded_event(100)).header("content-length", "5000000")),
    ];
    for (what, request) in cases {
        let r = harness(&FakeUpstream::new()).handle(request).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let body = assert_error(&r, 413, "body-too-large", too_large);
        assert_eq!(body["reason"], too_large, "{what}");
        assert!(r.run.outbound.is_empty(), "{what}");
    }
    // Exactly 1 MiB is still an event.
    let r = harness(&loads(1)).handle(TestRequest::post("/", padded_event(MIB))).await.unwrap();
    assert_loaded(&r, USAGE_NAME, Some(1), 1);
}

#[tokio::test(start_paused = true)]
async fn anything_but_post_or_get_healthz_is_405() {
    use http::Method;
    for (method, path) in [
        (Method::GET, "/"),
        (Method::PUT, "/"),
        (Method::DELETE, "/"),
        (Method::PATCH, "/events"),
        (Method::OPTIONS, "/"),
        (Method::GET, "/healthz/x"),
    ] {
        let request = TestRequest::new(method.clone(), path).body(fixture("bare-object.json").to_string());
        let r = harness(&FakeUpstream::new()).handle(request).await.unwrap();
        let reason = format!("{method} is not supported; POST an event, or GET /healthz");
        let body = assert_error(&r, 405, "method-not-allowed", &reason);
        assert_eq!(body["reason"], reason);
        assert!(r.run.outbound.is_empty());
    }
    let r = harness(&FakeUpstream::new()).handle(TestRequest::post("/healthz", "{}")).await.unwrap();
    assert_error(&r, 405, "method-not-allowed", "use GET /healthz");
}

#[tokio::test(start_paused = true)]
async fn buckets_outside_the_allow_list_are_403_before_anything_else() {
    for name in [USAGE_NAME, "usage-report.csv"] {
        let r = harness(&FakeUpstream::new()).handle(bare("other-logs", name, Some(3))).await.unwrap();
        let body = assert_error(&r, 403, "bucket-not-allowed", "bucket \"other-logs\" is not in GCR_USAGE_BUCKETS");
        assert_eq!(body["object"], object_json("other-logs", name, Some(3)));
        assert!(r.run.outbound.is_empty());
    }
    // The list takes several buckets, with or without gs:// and a trailing slash; * allows any.
    for (list, bucket) in
        [("gs://a-logs/, demo-gcr-logs", BUCKET), ("a-logs,gs://b-logs/", "b-logs"), ("*", "any-bucket")]
    {
        let up = FakeUpstream::new();
        up.route(
            gcr_usage_host_test::google::jobs_insert_rule(PROJECT).reply(gcr_usage_host_test::google::job_done_echo(1)),
        );
        let r = harness(&up).env("GCR_USAGE_BUCKETS", list).handle(bare(bucket, USAGE_NAME, Some(1))).await.unwrap();
        assert_eq!((r.status, r.json()["outcome"].as_str()), (200, Some("loaded")), "{list}: {}", r.body_str());
        assert_eq!(
            r.run.outbound[0].body_json()["configuration"]["load"]["sourceUris"][0],
            format!("gs://{bucket}/{USAGE_NAME}")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn names_needing_escapes_give_valid_job_ids_and_exact_urls() {
    let suffix = "_usage_2024_03_11_14_00_00_00cbe5_v0";
    let names = [
        format!("dir with spaces/a#b?c%d+e&f=g{suffix}"),
        format!("%2F%20already-escaped%3F{suffix}"),
        format!("ünïcødé/日本語/🚀{suffix}"),
        format!("{}{suffix}", "x".repeat(1024 - suffix.len())),
        format!("{}{suffix}", "é".repeat((1024 - suffix.len()) / 2)),
        // Control characters: JSON-escaped six bytes each, so the insert body outgrows one 4 KiB
        // stream write.
        format!("{}{suffix}", "\u{1}".repeat(900)),
    ];
    let mut largest = 0;
    for name in &names {
        assert!(name.len() <= 1024);
        let up = duplicates(11);
        let r = harness(&up).handle(bare(BUCKET, name, Some(i64::MAX as u64))).await.unwrap();
        let body = r.json();
        let job_id = expected_job_id(BUCKET, name, Some(i64::MAX as u64), USAGE_DEST, 1);
        assert_valid_job_id(&job_id);
        assert!(job_id.len() < 300, "{job_id}");
        assert_eq!(
            (r.status, &body["outcome"], &body["jobId"], &body["rows"]),
            (200, &json!("duplicate"), &json!(job_id), &json!(11))
        );
        assert_eq!(body["object"]["name"], name.as_str(), "the name is reported as it is");
        let [insert, get] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
        largest = largest.max(insert.body.len());
        // The gs:// URI carries the name verbatim: BigQuery takes it unescaped.
        assert_insert(insert, &format!("gs://{BUCKET}/{name}"), "usage", &job_id);
        assert_eq!(get.url, format!("{BQ}{INSERT_PATH}/{job_id}?location=US&prettyPrint=false"));
        assert_eq!(get.path, format!("{INSERT_PATH}/{job_id}"));
    }
    assert!(largest > 4096, "one insert body needs several stream writes: {largest}");
}

#[tokio::test(start_paused = true)]
async fn project_ids_and_locations_are_percent_encoded_in_urls() {
    let project = "example.com:demo-project";
    let up = FakeUpstream::new();
    let encoded = "example.com%3Ademo-project";
    up.route(
        gcr_usage_host_test::google::jobs_insert_rule(encoded).reply(gcr_usage_host_test::google::duplicate_job_echo()),
    )
    .route(gcr_usage_host_test::google::jobs_get_rule(encoded).reply(gcr_usage_host_test::google::job_done_echo(1)));
    let h = harness(&up).env("GCR_USAGE_PROJECT", project).env("GCR_USAGE_LOCATION", "europe-west4");
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    let destination = format!("{project}:storageanalysis.usage");
    let job_id = expected_job_id(BUCKET, USAGE_NAME, Some(1), &destination, 1);
    assert_eq!((r.status, &r.json()["destination"], &r.json()["jobId"]), (200, &json!(destination), &json!(job_id)));
    let [insert, get] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
    assert_eq!(insert.url, format!("{BQ}/bigquery/v2/projects/{encoded}/jobs?prettyPrint=false"));
    assert_eq!(
        insert.body_json()["jobReference"],
        json!({"projectId": project, "jobId": job_id, "location": "europe-west4"})
    );
    assert_eq!(
        get.url,
        format!("{BQ}/bigquery/v2/projects/{encoded}/jobs/{job_id}?location=europe-west4&prettyPrint=false")
    );
}
