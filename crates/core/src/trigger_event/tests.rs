use super::*;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

const NAME: &str = "accessLog_usage_2019_05_19_18_00_00_00cbe51e4b703105e9_v0";

fn resource() -> Value {
    json!({"kind":"storage#object","id":"demo-gcr-logs/x/1","bucket":"demo-gcr-logs","name":NAME,"generation":"1558293456789000","metageneration":"1","size":"1234"})
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

const CE: [(&str, &str); 5] = [
    ("ce-specversion", "1.0"),
    ("ce-type", "google.cloud.storage.object.v1.finalized"),
    ("ce-source", "//storage.googleapis.com/projects/_/buckets/demo-gcr-logs"),
    ("ce-id", "1234"),
    ("ce-subject", "objects/accessLog_usage_2019_05_19_18_00_00_00cbe51e4b703105e9_v0"),
];

fn expected() -> ObjectRef {
    ObjectRef { bucket: "demo-gcr-logs".into(), name: NAME.into(), generation: Some(1558293456789000) }
}

fn parse(h: &[(&str, &str)], body: &Value) -> Result<(EventShape, EventDecision), InvalidEvent> {
    parse_event(&headers(h), body.to_string().as_bytes())
}

fn err(h: &[(&str, &str)], body: &[u8]) -> InvalidEvent {
    parse_event(&headers(h), body).unwrap_err()
}

fn pubsub(data: Value, attributes: Value) -> Value {
    json!({"message":{"data": data, "attributes": attributes, "messageId":"1","publishTime":"2019-05-19T19:15:00Z"},"subscription":"projects/p/subscriptions/s"})
}

#[test]
fn all_five_shapes_give_the_same_object() {
    let want = EventDecision::Object(expected());
    assert_eq!(parse(&CE, &resource()).unwrap(), (EventShape::CloudEventBinary, want.clone()));
    let structured = json!({"specversion":"1.0","id":"1","source":"//storage.googleapis.com/projects/_/buckets/demo-gcr-logs","type":"google.cloud.storage.object.v1.finalized","subject":"objects/x","time":"2019-05-19T19:15:00Z","data":resource()});
    assert_eq!(
        parse(&[("content-type", "application/cloudevents+json; charset=utf-8")], &structured).unwrap(),
        (EventShape::CloudEventStructured, want.clone())
    );
    assert_eq!(parse(&[], &structured).unwrap().0, EventShape::CloudEventStructured);
    let push = pubsub(
        json!(STANDARD.encode(resource().to_string())),
        json!({"eventType":"OBJECT_FINALIZE","payloadFormat":"JSON_API_V1","bucketId":"demo-gcr-logs","objectId":NAME,"objectGeneration":"1558293456789000"}),
    );
    assert_eq!(parse(&[], &push).unwrap(), (EventShape::PubSubPush, want.clone()));
    let none = json!({"message":{"attributes":{"eventType":"OBJECT_FINALIZE","payloadFormat":"NONE","bucketId":"demo-gcr-logs","objectId":NAME,"objectGeneration":"1558293456789000"},"messageId":"2"}});
    assert_eq!(parse(&[], &none).unwrap(), (EventShape::PubSubPush, want.clone()));
    let legacy = json!({"context":{"eventId":"1","timestamp":"2019-05-19T19:15:00Z","eventType":"google.storage.object.finalize","resource":{"service":"storage.googleapis.com","name":"projects/_/buckets/demo-gcr-logs/objects/x","type":"storage#object"}},"data":resource()});
    assert_eq!(parse(&[], &legacy).unwrap(), (EventShape::LegacyFunction, want.clone()));
    let flat = json!({"eventId":"1","eventType":"google.storage.object.finalize","resource":"projects/_/buckets/demo-gcr-logs/objects/x","data":resource()});
    assert_eq!(parse(&[], &flat).unwrap(), (EventShape::LegacyFunction, want.clone()));
    assert_eq!(parse(&[], &resource()).unwrap(), (EventShape::ObjectResource, want));
}

#[test]
fn non_finalize_events_are_ignored_with_a_reason() {
    let mut h = CE;
    h[1] = ("ce-type", "google.cloud.storage.object.v1.deleted");
    let (_, d) = parse(&h, &resource()).unwrap();
    let EventDecision::Ignore { object, reason } = d else { panic!() };
    assert_eq!(object, Some(expected()));
    assert!(reason.contains("deleted"));
    for t in ["OBJECT_DELETE", "OBJECT_ARCHIVE", "OBJECT_METADATA_UPDATE"] {
        let push = pubsub(json!(STANDARD.encode(resource().to_string())), json!({"eventType":t}));
        assert!(matches!(parse(&[], &push).unwrap().1, EventDecision::Ignore { .. }), "{t}");
    }
    let legacy = json!({"context":{"eventType":"google.storage.object.delete"},"data":resource()});
    assert!(matches!(parse(&[], &legacy).unwrap().1, EventDecision::Ignore { .. }));
}

#[test]
fn bad_bodies_name_the_problem() {
    assert_eq!(err(&[], b"not json").field, "body");
    assert!(err(&[], b"not json").message.contains("not valid JSON"));
    assert!(err(&[], b"").message.contains("empty"));
    assert!(err(&[], b"[1,2]").message.contains("an array"));
    assert!(err(&[], br#"{"hello":"world"}"#).message.contains("unrecognised shape"));
    assert_eq!(err(&[], br#"{"bucket":"demo-gcr-logs"}"#).field, "name");
    assert_eq!(err(&[], br#"{"bucket":"","name":"x"}"#).field, "bucket");
    assert_eq!(err(&[], br#"{"bucket":"demo-gcr-logs","name":""}"#).field, "name");
    assert_eq!(err(&[], br#"{"bucket":7,"name":"x"}"#).message, "must be a string, not a number");
    assert_eq!(err(&[], br#"{"kind":"storage#bucket","bucket":"b-1","name":"x"}"#).field, "kind");
    for generation in [
        r#""12a""#,
        r#""-1""#,
        r#""1.5""#,
        "1.5",
        "-3",
        r#""""#,
        "true",
        r#""99999999999999999999""#,
        r#""9223372036854775808""#,
        r#""18446744073709551615""#,
        "9223372036854775808",
    ] {
        let body = format!(r#"{{"bucket":"demo-gcr-logs","name":"x","generation":{generation}}}"#);
        assert_eq!(err(&[], body.as_bytes()).field, "generation", "{generation}");
    }
    assert_eq!(
        parse(&[], &json!({"bucket":"demo-gcr-logs","name":"x","generation":42})).unwrap().1,
        EventDecision::Object(ObjectRef { bucket: "demo-gcr-logs".into(), name: "x".into(), generation: Some(42) })
    );
}

#[test]
fn bad_pubsub_messages() {
    let attrs = json!({"eventType":"OBJECT_FINALIZE","payloadFormat":"JSON_API_V1"});
    let e = err(&[], pubsub(json!("%%%not-base64%%%"), attrs.clone()).to_string().as_bytes());
    assert_eq!(e.field, "message.data");
    assert!(e.message.contains("base64"));
    let e = err(&[], pubsub(json!(STANDARD.encode("not json")), attrs.clone()).to_string().as_bytes());
    assert!(e.message.contains("does not decode to JSON"));
    let e =
        err(&[], pubsub(json!(STANDARD.encode(r#"{"bucket":"demo-gcr-logs"}"#)), attrs.clone()).to_string().as_bytes());
    assert_eq!(e.field, "message.data.name");
    let e = err(&[], pubsub(json!(""), attrs).to_string().as_bytes());
    assert_eq!(e.field, "message.data");
    let e = err(&[], pubsub(json!("e30="), json!({})).to_string().as_bytes());
    assert_eq!(e.field, "message.attributes.eventType");
    let e = err(&[], pubsub(json!("e30="), json!({"eventType":"SOMETHING"})).to_string().as_bytes());
    assert!(e.message.contains("unsupported"));
    let e = err(
        &[],
        pubsub(json!("e30="), json!({"eventType":"OBJECT_FINALIZE","payloadFormat":"PROTO"})).to_string().as_bytes(),
    );
    assert_eq!(e.field, "message.attributes.payloadFormat");
    // payloadFormat NONE carries the object only in the attributes: missing ones are named.
    let e = err(
        &[],
        pubsub(Value::Null, json!({"eventType":"OBJECT_FINALIZE","payloadFormat":"NONE","objectId":"x"}))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(e.field, "message.attributes.bucketId");
    let e = err(&[], pubsub(Value::Null, json!({"eventType":"OBJECT_FINALIZE","payloadFormat":"NONE","bucketId":"demo-gcr-logs","objectId":"x","objectGeneration":"x1"})).to_string().as_bytes());
    assert_eq!(e.field, "message.attributes.objectGeneration");
    let e = err(
        &[],
        pubsub(
            Value::Null,
            json!({"eventType":"OBJECT_FINALIZE","payloadFormat":"NONE","bucketId":"Bad Bucket","objectId":"x"}),
        )
        .to_string()
        .as_bytes(),
    );
    assert_eq!(e.field, "message.attributes.bucketId");
    assert_eq!(err(&[], br#"{"message":"hi"}"#).field, "message");
}

#[test]
fn bad_cloudevents() {
    for missing in ["ce-specversion", "ce-type", "ce-source", "ce-id"] {
        let h: Vec<_> = CE.iter().copied().filter(|(k, _)| *k != missing).collect();
        let e = parse(&h, &resource()).unwrap_err();
        assert_eq!(e.field, missing);
        assert!(e.message.contains("missing"));
    }
    let mut h = CE;
    h[1] = ("ce-type", "com.example.something");
    let e = parse(&h, &resource()).unwrap_err();
    assert_eq!(e.field, "ce-type");
    assert!(e.message.contains("unsupported CloudEvent type"));
    let mut h = CE;
    h[0] = ("ce-specversion", "0.3");
    assert_eq!(parse(&h, &resource()).unwrap_err().field, "ce-specversion");
    assert_eq!(err(&CE, b"<xml/>").field, "body");
    let structured =
        json!({"specversion":"1.0","id":"1","source":"s","type":"google.cloud.storage.object.v1.finalized"});
    assert_eq!(parse(&[], &structured).unwrap_err().field, "data");
    let structured =
        json!({"specversion":"1.0","id":"1","type":"google.cloud.storage.object.v1.finalized","data":resource()});
    assert_eq!(parse(&[], &structured).unwrap_err().field, "source");
    let structured = json!({"specversion":"1.0","id":"1","source":"s","type":"google.cloud.storage.object.v1.finalized","data":{"bucket":"demo-gcr-logs"}});
    assert_eq!(parse(&[], &structured).unwrap_err().field, "data.name");
}

#[test]
fn bad_legacy_events() {
    assert_eq!(err(&[], br#"{"context":{"eventType":"google.storage.object.finalize"}}"#).field, "data");
    assert_eq!(err(&[], br#"{"context":{},"data":{}}"#).field, "context.eventType");
    assert_eq!(err(&[], br#"{"context":"x","data":{}}"#).field, "context");
    let e = err(&[], br#"{"context":{"eventType":"providers/cloud.storage/eventTypes/object.change"},"data":{}}"#);
    assert!(e.message.contains("unsupported event type"));
}

#[test]
fn odd_but_valid_object_names_pass_through_unchanged() {
    for name in ["dir/a b#c?d%e+f", "ünïcödé/日本語", &"n".repeat(1024)] {
        let body = json!({"bucket":"demo-gcr-logs","name":name,"generation":"1"});
        let (_, d) = parse(&[], &body).unwrap();
        assert_eq!(
            d,
            EventDecision::Object(ObjectRef { bucket: "demo-gcr-logs".into(), name: name.into(), generation: Some(1) })
        );
    }
    assert_eq!(parse(&[], &json!({"bucket":"demo-gcr-logs","name":"n".repeat(1025)})).unwrap_err().field, "name");
}
