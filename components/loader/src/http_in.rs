//! `wasi:http/incoming-handler`: read the request (bounded), let the core handle it, write the
//! answer and one log line.

use gcr_usage_core::service::{self, Request};
use gcr_usage_core::trigger_event::MAX_EVENT_BYTES;
use http::{HeaderMap, HeaderName, HeaderValue};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

use crate::wasi_io::{WasiIo, now_ms};

impl Guest for crate::Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let started = now_ms();
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(m) => m,
        };
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let mut headers = HeaderMap::new();
        for (name, value) in request.headers().entries() {
            // Hosts hand over valid header names; anything odd is skipped, never trapped on.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
                headers.append(name, value);
            }
        }
        let body = if method == "POST" && !service::declared_too_large(&headers) {
            match request
                .consume()
                .map_err(|()| "request body unavailable".to_string())
                .and_then(|b| crate::http_out::read_body(b, MAX_EVENT_BYTES))
            {
                Ok(body) => body,
                Err(why) => {
                    let error = gcr_usage_core::LoadError::InvalidInput(format!("body: could not be read ({why})"));
                    let answer = gcr_usage_core::contract::Answer::from_error(&error, None);
                    crate::log(&answer.log_line(&[]));
                    return respond(response_out, answer.status, &answer.body_bytes());
                }
            }
        } else {
            Vec::new()
        };
        let handled = crate::with_instance_state(|instance| {
            service::handle(
                &Request { method: &method, path_and_query: &path, headers: &headers, body: &body },
                crate::config(),
                &mut WasiIo,
                instance,
            )
        });
        let answer = handled.answer;
        if handled.log {
            let mut extra = vec![("durationMs", serde_json::json!(now_ms().saturating_sub(started)))];
            if let Some(shape) = handled.shape {
                extra.push(("eventShape", shape.as_str().into()));
            }
            if let Some(caller) = handled.caller {
                extra.push(("caller", caller.into()));
            }
            crate::log(&answer.log_line(&extra));
        }
        respond(response_out, answer.status, &answer.body_bytes());
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/json");
    let _ = headers.append("content-length", body.len().to_string().as_bytes());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing_body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing_body.write() {
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; nothing left to tell it.
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}
