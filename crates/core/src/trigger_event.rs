//! Trigger events: the five shapes a "new object" notification arrives in (gcp-apis.md §1),
//! reduced to one [`ObjectRef`] — or to a stated reason to ignore the event, or to an
//! [`InvalidEvent`] that names the offending field.

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::object::{ObjectRef, truncate};

/// Bodies above this are refused with 413 before parsing: a storage event is a few KiB.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// What to do with a well-formed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDecision {
    /// A new object was finalised: consider loading it.
    Object(ObjectRef),
    /// A well-formed event that is not about a new object (delete, archive, metadata update).
    Ignore { object: Option<ObjectRef>, reason: String },
}

/// Which delivery shape the event came in (for the log line; operators debug triggers by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    CloudEventBinary,
    CloudEventStructured,
    PubSubPush,
    LegacyFunction,
    ObjectResource,
}

impl EventShape {
    pub fn as_str(self) -> &'static str {
        match self {
            EventShape::CloudEventBinary => "cloudevent-binary",
            EventShape::CloudEventStructured => "cloudevent-structured",
            EventShape::PubSubPush => "pubsub-push",
            EventShape::LegacyFunction => "legacy-function",
            EventShape::ObjectResource => "object-resource",
        }
    }
}

/// A malformed event: answered 400, with the field (header or JSON path) and the rule broken.
pub type InvalidEvent = crate::field_error::FieldError;

fn invalid<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, InvalidEvent> {
    Err(InvalidEvent { field: field.into(), message: message.into() })
}

const CE_FINALIZED: &str = "google.cloud.storage.object.v1.finalized";
const CE_OTHER_STORAGE: [&str; 3] = [
    "google.cloud.storage.object.v1.deleted",
    "google.cloud.storage.object.v1.archived",
    "google.cloud.storage.object.v1.metadataUpdated",
];
const LEGACY_FINALIZE: &str = "google.storage.object.finalize";
const LEGACY_OTHER: [&str; 3] =
    ["google.storage.object.delete", "google.storage.object.archive", "google.storage.object.metadataUpdate"];
const PUBSUB_OTHER: [&str; 3] = ["OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE"];

/// Parses one delivered event. `headers` are the request headers (names are case-insensitive).
pub fn parse_event(headers: &HeaderMap, body: &[u8]) -> Result<(EventShape, EventDecision), InvalidEvent> {
    // The CloudEvents HTTP binding picks the mode by Content-Type first: a structured event may
    // carry ce-* headers too, and only without that media type do ce-* headers mean binary mode.
    let structured = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/cloudevents+json"));
    if !structured && headers.keys().any(|k| k.as_str().starts_with("ce-")) {
        return binary_cloudevent(headers, body).map(|d| (EventShape::CloudEventBinary, d));
    }
    let root = parse_json_object(body)?;
    if structured || root.contains_key("specversion") {
        structured_cloudevent(&root).map(|d| (EventShape::CloudEventStructured, d))
    } else if root.contains_key("message") {
        pubsub_push(&root).map(|d| (EventShape::PubSubPush, d))
    } else if root.contains_key("context") || root.contains_key("eventType") {
        legacy_event(&root).map(|d| (EventShape::LegacyFunction, d))
    } else if root.contains_key("bucket") || root.contains_key("name") || root.contains_key("kind") {
        object_resource(&root, "").map(|o| (EventShape::ObjectResource, EventDecision::Object(o)))
    } else {
        invalid(
            "body",
            "JSON of an unrecognised shape: expected a CloudEvent, a Pub/Sub push message, \
             a Cloud Functions event ({context, data}) or a Cloud Storage object resource",
        )
    }
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, InvalidEvent> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return invalid("body", "is empty; expected a JSON event");
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => invalid("body", format!("must be a JSON object, not {}", json_kind(&other))),
        Err(e) => invalid("body", format!("is not valid JSON ({e})")),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Eventarc / Cloud Functions gen2 binary mode: the CloudEvent attributes travel as `ce-*` headers.
fn binary_cloudevent(headers: &HeaderMap, body: &[u8]) -> Result<EventDecision, InvalidEvent> {
    let header = |name: &str| -> Result<String, InvalidEvent> {
        match headers.get(name).map(|v| v.to_str()) {
            Some(Ok(v)) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Some(Ok(_)) => invalid(name, "CloudEvent header is empty"),
            Some(Err(_)) => invalid(name, "CloudEvent header is not visible ASCII"),
            None => invalid(name, "required CloudEvent header is missing"),
        }
    };
    let spec = header("ce-specversion")?;
    check_specversion("ce-specversion", &spec)?;
    header("ce-id")?;
    header("ce-source")?;
    let kind = header("ce-type")?;
    cloudevent_decision("ce-type", &kind, || object_resource(&parse_json_object(body)?, ""))
}

/// Structured mode: one JSON document with the attributes and the object in `data`.
fn structured_cloudevent(root: &Map<String, Value>) -> Result<EventDecision, InvalidEvent> {
    let spec = required_string(root, "specversion", "specversion")?;
    check_specversion("specversion", &spec)?;
    required_string(root, "id", "id")?;
    required_string(root, "source", "source")?;
    let kind = required_string(root, "type", "type")?;
    cloudevent_decision("type", &kind, || match root.get("data") {
        Some(Value::Object(data)) => object_resource(data, "data"),
        Some(other) => {
            invalid("data", format!("must be the object resource (a JSON object), not {}", json_kind(other)))
        }
        None => invalid("data", "is missing; a storage CloudEvent carries the object resource in data"),
    })
}

fn check_specversion(field: &str, spec: &str) -> Result<(), InvalidEvent> {
    if spec == "1.0" {
        Ok(())
    } else {
        invalid(field, format!("CloudEvents spec version {spec:?} is not supported (expected \"1.0\")"))
    }
}

fn cloudevent_decision(
    field: &str,
    kind: &str,
    object: impl FnOnce() -> Result<ObjectRef, InvalidEvent>,
) -> Result<EventDecision, InvalidEvent> {
    if kind == CE_FINALIZED {
        object().map(EventDecision::Object)
    } else if CE_OTHER_STORAGE.contains(&kind) {
        Ok(EventDecision::Ignore { object: object().ok(), reason: format!("event type {kind} is not a new object") })
    } else {
        invalid(field, format!("unsupported CloudEvent type {:?}; expected {CE_FINALIZED}", truncate(kind, 100)))
    }
}

/// Pub/Sub push of a Cloud Storage notification: the object resource is base64 in
/// `message.data` (payloadFormat JSON_API_V1) or only in the attributes (payloadFormat NONE).
fn pubsub_push(root: &Map<String, Value>) -> Result<EventDecision, InvalidEvent> {
    let Some(Value::Object(message)) = root.get("message") else {
        return invalid("message", "must be a JSON object (a Pub/Sub push message)");
    };
    let empty = Map::new();
    let attributes = match message.get("attributes") {
        Some(Value::Object(a)) => a,
        None | Some(Value::Null) => &empty,
        Some(other) => return invalid("message.attributes", format!("must be an object, not {}", json_kind(other))),
    };
    let attr = |name: &str| attributes.get(name).and_then(Value::as_str);
    let event_type = match attr("eventType") {
        Some(t) => t,
        None => {
            return invalid(
                "message.attributes.eventType",
                "is missing: this is not a Cloud Storage notification (expected OBJECT_FINALIZE)",
            );
        }
    };
    let format = attr("payloadFormat").unwrap_or("JSON_API_V1");
    let object = || -> Result<ObjectRef, InvalidEvent> {
        match format {
            "JSON_API_V1" => pubsub_data_object(message),
            "NONE" => object_from_attributes(attributes),
            other => invalid(
                "message.attributes.payloadFormat",
                format!("{:?} is not a Cloud Storage payload format (JSON_API_V1 or NONE)", truncate(other, 40)),
            ),
        }
    };
    if event_type == "OBJECT_FINALIZE" {
        object().map(EventDecision::Object)
    } else if PUBSUB_OTHER.contains(&event_type) {
        Ok(EventDecision::Ignore {
            object: object().ok(),
            reason: format!("event type {event_type} is not a new object"),
        })
    } else {
        invalid(
            "message.attributes.eventType",
            format!("unsupported notification type {:?}; expected OBJECT_FINALIZE", truncate(event_type, 60)),
        )
    }
}

fn pubsub_data_object(message: &Map<String, Value>) -> Result<ObjectRef, InvalidEvent> {
    let data = match message.get("data") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return invalid(
                "message.data",
                "is empty, but payloadFormat JSON_API_V1 carries the object resource there",
            );
        }
        Some(other) => return invalid("message.data", format!("must be a base64 string, not {}", json_kind(other))),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data.trim()))
        .or_else(|e| invalid("message.data", format!("is not valid base64 ({e})")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => object_resource(&map, "message.data"),
        Ok(other) => invalid("message.data", format!("decodes to {}, not an object resource", json_kind(&other))),
        Err(e) => invalid("message.data", format!("does not decode to JSON ({e})")),
    }
}

fn object_from_attributes(attributes: &Map<String, Value>) -> Result<ObjectRef, InvalidEvent> {
    let field = |name: &str| format!("message.attributes.{name}");
    let object = ObjectRef {
        bucket: required_string(attributes, "bucketId", &field("bucketId"))?,
        name: required_string(attributes, "objectId", &field("objectId"))?,
        generation: generation(attributes.get("objectGeneration"), &field("objectGeneration"))?,
    };
    validate(object, "message.attributes").map_err(|mut e| {
        // validate() speaks of bucket/name; the sender's fields are called bucketId/objectId here.
        e.field = e.field.replace(".bucket", ".bucketId").replace(".name", ".objectId");
        e
    })
}

/// Cloud Functions gen1 `{context, data}` as the Functions Framework posts it, and the
/// flattened variant with `eventType`/`eventId`/`resource` at the top level.
fn legacy_event(root: &Map<String, Value>) -> Result<EventDecision, InvalidEvent> {
    let (type_field, event_type) = match root.get("context") {
        Some(Value::Object(ctx)) => ("context.eventType", ctx.get("eventType")),
        Some(other) => return invalid("context", format!("must be an object, not {}", json_kind(other))),
        None => ("eventType", root.get("eventType")),
    };
    let Some(Value::String(event_type)) = event_type else {
        return invalid(type_field, "is missing or not a string");
    };
    let object = || match root.get("data") {
        Some(Value::Object(data)) => object_resource(data, "data"),
        Some(other) => {
            invalid("data", format!("must be the object resource (a JSON object), not {}", json_kind(other)))
        }
        None => invalid("data", "is missing; the event carries the object resource in data"),
    };
    if event_type == LEGACY_FINALIZE {
        object().map(EventDecision::Object)
    } else if LEGACY_OTHER.contains(&event_type.as_str()) {
        Ok(EventDecision::Ignore {
            object: object().ok(),
            reason: format!("event type {event_type} is not a new object"),
        })
    } else {
        invalid(
            type_field,
            format!("unsupported event type {:?}; expected {LEGACY_FINALIZE}", truncate(event_type, 100)),
        )
    }
}

/// A Cloud Storage object resource (`storage#object`); `at` is its JSON path in the event.
fn object_resource(map: &Map<String, Value>, at: &str) -> Result<ObjectRef, InvalidEvent> {
    let path = |f: &str| if at.is_empty() { f.to_string() } else { format!("{at}.{f}") };
    if let Some(kind) = map.get("kind").and_then(Value::as_str)
        && kind != "storage#object"
    {
        return invalid(
            path("kind"),
            format!("{:?} is not a Cloud Storage object (storage#object)", truncate(kind, 60)),
        );
    }
    let object = ObjectRef {
        bucket: required_string(map, "bucket", &path("bucket"))?,
        name: required_string(map, "name", &path("name"))?,
        generation: generation(map.get("generation"), &path("generation"))?,
    };
    validate(object, at)
}

fn validate(object: ObjectRef, at: &str) -> Result<ObjectRef, InvalidEvent> {
    object.validate(at).map(|()| object)
}

fn required_string(map: &Map<String, Value>, key: &str, field: &str) -> Result<String, InvalidEvent> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => invalid(field, "must not be empty"),
        None | Some(Value::Null) => invalid(field, "is missing"),
        Some(other) => invalid(field, format!("must be a string, not {}", json_kind(other))),
    }
}

/// Generations are int64 values sent as JSON strings; a JSON integer is accepted too.
fn generation(value: Option<&Value>, field: &str) -> Result<Option<u64>, InvalidEvent> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return invalid(field, format!("must be a decimal integer, not {}", json_kind(other))),
    };
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(field, format!("{:?} is not a decimal integer", truncate(&text, 40)));
    }
    match text.parse::<u64>() {
        Ok(generation) if generation <= crate::object::MAX_GENERATION => Ok(Some(generation)),
        Ok(generation) => invalid(field, crate::object::generation_out_of_range(generation)),
        Err(_) => invalid(field, format!("{text} is out of range")),
    }
}

#[cfg(test)]
mod tests;
