//! Credentials, both ways: the loader's own (service-account keys → access tokens) and the
//! trigger's (who may send events). Pure: tokens are built and checked here, fetched by hosts.

pub mod adc;
pub mod google_keys;
pub mod jwt;
pub mod service_account;
pub mod trigger;

/// `POST url` with a form body: how both token exchanges (service-account key, refresh token)
/// talk to an OAuth token endpoint. `url` must already be a valid URL.
pub(crate) fn form_post(url: &str, body: String) -> http::Request<Vec<u8>> {
    let body = body.into_bytes();
    http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::USER_AGENT, crate::job::USER_AGENT)
        .body(body)
        .expect("a validated URL")
}
