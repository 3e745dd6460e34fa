//! Every request of a backfill goes through [`Client::call`]: the access token (fetched and
//! refreshed here, from whichever credential the user has), the timeout, and the retries of
//! transient failures under a [`Budget`] — so a network that drops mid-listing or mid-upload
//! costs a pause, never a lost or doubled page, and a spent quota is never retried at all.

use std::time::Duration;

use crate::auth::adc::{self, AuthorizedUser};
use crate::auth::service_account::ServiceAccountKey;
use crate::bigquery::{ErrorClass, GoogleError};
use crate::budget::Budget;
use crate::credentials::REFRESH_MARGIN;
use crate::metadata;
use crate::secret::Secret;
use crate::service::Io;
use crate::session::Reply;
use crate::url::Endpoint;

use super::BackfillError;

/// How long one request and its retries may take before the backfill gives up (and can be
/// rerun): long enough to ride out a network blip or a Google incident's first minutes.
pub const CALL_BUDGET: Duration = Duration::from_secs(300);
/// Token requests get less: off Google Cloud the metadata server is simply not there, and a
/// user without credentials should hear so in seconds.
const TOKEN_BUDGET: Duration = Duration::from_secs(10);

/// Where access tokens come from.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No `Authorization` header (emulators).
    None,
    /// A bearer token given as is (`--token`, `GCR_USAGE_TOKEN`): it cannot be refreshed.
    Static(Secret),
    /// A service-account key: a signed assertion exchanged for a token.
    ServiceAccount(Box<ServiceAccountKey>),
    /// `gcloud auth application-default login`'s refresh token.
    AuthorizedUser(AuthorizedUser),
    /// The metadata server (on Google Cloud: Cloud Run jobs, GCE, GKE).
    Metadata(Endpoint),
}

impl Credential {
    /// How the user would recognise it, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Credential::None => "no credentials (GCR_USAGE_AUTH=none)",
            Credential::Static(_) => "the bearer token given (--token / GCR_USAGE_TOKEN)",
            Credential::ServiceAccount(_) => "the service-account key",
            Credential::AuthorizedUser(_) => "the gcloud application-default login (authorized_user)",
            Credential::Metadata(_) => "the metadata server's service account",
        }
    }
}

/// Builds a request given the current token (`None`: no credentials): what [`Client::call`]
/// sends again on a retry, with a fresh token after a 401.
pub type MakeRequest<'a> = dyn Fn(Option<&str>) -> http::Request<Vec<u8>> + 'a;

/// A token and the monotonic ms it stops being good (with the refresh margin taken off).
#[derive(Debug)]
struct Current {
    token: Secret,
    good_until_ms: u64,
}

pub struct Client<'io, I: Io> {
    pub io: &'io mut I,
    credential: Credential,
    current: Option<Current>,
    /// Requests answered, and the ms they took: the dry run's time estimate uses the mean.
    pub answered: u64,
    pub answered_ms: u64,
}

impl<'io, I: Io> Client<'io, I> {
    pub fn new(io: &'io mut I, credential: Credential) -> Client<'io, I> {
        Client { io, credential, current: None, answered: 0, answered_ms: 0 }
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The token to send now, fetched or refreshed when needed.
    pub fn token(&mut self) -> Result<Option<Secret>, BackfillError> {
        let now = self.io.now_ms();
        if let Some(current) = &self.current
            && now < current.good_until_ms
        {
            return Ok(Some(current.token.clone()));
        }
        let request = match &self.credential {
            Credential::None => return Ok(None),
            Credential::Static(token) => return Ok(Some(token.clone())),
            Credential::ServiceAccount(key) => key.token_request(self.io.unix_secs()),
            Credential::AuthorizedUser(user) => user.token_request(),
            Credential::Metadata(endpoint) => metadata::token_request(endpoint),
        };
        let sent = self.send_with_retries("the access-token request", &|_| request.clone(), TOKEN_BUDGET, false);
        let response = match (sent, &self.credential) {
            (Err(BackfillError::Upstream(why)), Credential::Metadata(_)) => {
                return Err(BackfillError::Credentials(format!(
                    "none found: GOOGLE_APPLICATION_CREDENTIALS is not set, gcloud's application-default \
                     credentials file is absent, and the metadata server did not answer ({why}). Run `gcloud auth \
                     application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service-account key \
                     file, or pass --token"
                )));
            }
            (sent, _) => sent?,
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(BackfillError::Credentials(match &self.credential {
                Credential::AuthorizedUser(_) => adc::refresh_refused(status, response.body()),
                Credential::Metadata(_) => format!(
                    "no credentials: the metadata server answered {} (set GOOGLE_APPLICATION_CREDENTIALS to a key file, \
                     run `gcloud auth application-default login`, or pass --token)",
                    GoogleError::from_response(status, response.body())
                ),
                _ => format!(
                    "the token endpoint refused {}: {}",
                    self.credential.describe(),
                    GoogleError::from_response(status, response.body())
                ),
            }));
        }
        let token = metadata::parse_token(response.body()).map_err(BackfillError::Credentials)?;
        let lifetime = token.expires_in.unwrap_or(Duration::from_secs(3600));
        let good = lifetime.saturating_sub(REFRESH_MARGIN).max(Duration::from_secs(30));
        let now = self.io.now_ms();
        self.current = Some(Current { token: token.value.clone(), good_until_ms: now + good.as_millis() as u64 });
        Ok(Some(token.value))
    }

    /// Sends the request `make` builds (with the current token) until it gets an answer that
    /// is not transient, and returns it — whatever its status, except that a `quotaExceeded`
    /// is [`BackfillError::Quota`] and a 401 after a fresh token is
    /// [`BackfillError::Credentials`]. `what` names the request in messages.
    pub fn call(
        &mut self,
        what: &str,
        make: &dyn Fn(Option<&str>) -> http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, BackfillError> {
        let response = self.send_with_retries(what, make, CALL_BUDGET, true)?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        // Expired under a long run, or revoked: one fresh token, then the answer stands.
        let refreshable = !matches!(self.credential, Credential::Static(_) | Credential::None);
        let answer = if refreshable {
            self.current = None;
            self.send_with_retries(what, make, CALL_BUDGET, true)?
        } else {
            response
        };
        if answer.status().as_u16() == 401 {
            let error = GoogleError::from_response(401, answer.body());
            return Err(BackfillError::Credentials(format!(
                "{what}: Google refused {} ({error}): it has expired or been revoked{}",
                self.credential.describe(),
                match self.credential {
                    Credential::Static(_) =>
                        "; get a new one (gcloud auth print-access-token) or use Application Default Credentials",
                    _ => "",
                }
            )));
        }
        Ok(answer)
    }

    /// Sends every request `makes` builds (all with the current token) through
    /// [`Io::send_all`], which may send them in parallel, and returns the answers in order,
    /// interpreted like [`Client::call`]'s, except that a `quotaExceeded` comes back as the
    /// answer it is (the others may have done their work): whatever did not get a final answer
    /// the first time (a transient error, no answer, a 401) goes through `call` on its own.
    pub fn call_all(
        &mut self,
        what: &str,
        makes: &[Box<MakeRequest<'_>>],
    ) -> Result<Vec<http::Response<Vec<u8>>>, BackfillError> {
        let token = self.token()?;
        let timeout = Duration::from_secs(60);
        let requests = makes.iter().map(|make| (make(token.as_ref().map(Secret::expose)), timeout)).collect();
        let replies = self.io.send_all(requests);
        let mut answers = Vec::with_capacity(makes.len());
        for (make, reply) in makes.iter().zip(replies) {
            let again = match reply {
                Reply::Response(response) if response.status().is_success() => {
                    answers.push(response);
                    continue;
                }
                Reply::Response(response) => {
                    let status = response.status().as_u16();
                    let error = GoogleError::from_response(status, response.body());
                    match error.class() {
                        // Answers, for the caller to read: a spent quota among them must not
                        // hide the requests that did go through.
                        ErrorClass::Quota | ErrorClass::AlreadyExists | ErrorClass::Permanent if status != 401 => {
                            answers.push(response);
                            continue;
                        }
                        _ => true,
                    }
                }
                Reply::Failed(_) | Reply::Refused { .. } => true,
            };
            if again {
                answers.push(self.call(what, make.as_ref())?);
            }
        }
        Ok(answers)
    }

    fn send_with_retries(
        &mut self,
        what: &str,
        make: &dyn Fn(Option<&str>) -> http::Request<Vec<u8>>,
        limit: Duration,
        with_token: bool,
    ) -> Result<http::Response<Vec<u8>>, BackfillError> {
        let seed = self.io.random_u64();
        let mut budget = Budget::new(limit, self.io.now_ms(), seed);
        loop {
            let token = if with_token { self.token()? } else { None };
            let now = self.io.now_ms();
            let Some(timeout) = budget.request_timeout(now) else {
                return Err(BackfillError::Upstream(format!("{what}: no answer within {} s", limit.as_secs())));
            };
            let request = make(token.as_ref().map(Secret::expose));
            let trouble = match self.io.send(request, timeout) {
                Reply::Response(response) => {
                    self.answered += 1;
                    self.answered_ms += self.io.now_ms().saturating_sub(now);
                    let status = response.status().as_u16();
                    if response.status().is_success() {
                        return Ok(response);
                    }
                    let error = GoogleError::from_response(status, response.body());
                    match error.class() {
                        ErrorClass::Transient => format!("{what} answered {error}"),
                        ErrorClass::Quota => return Err(BackfillError::Quota(format!("{what}: {error}"))),
                        ErrorClass::AlreadyExists | ErrorClass::Permanent => return Ok(response),
                    }
                }
                Reply::Failed(why) => format!("{what} failed: {why}"),
                Reply::Refused { origin, why } => {
                    return Err(BackfillError::Upstream(format!("{what}: {origin} refused: {why}")));
                }
            };
            match budget.retry(trouble.clone(), self.io.now_ms()) {
                Ok(delay) => self.io.sleep(delay),
                Err(_) => {
                    return Err(BackfillError::Upstream(format!(
                        "{trouble} (still failing after {} s of retries; run the backfill again: it resumes where it stopped)",
                        limit.as_secs()
                    )));
                }
            }
        }
    }

    /// Mean answer time so far, for estimates.
    pub fn mean_answer_ms(&self) -> Option<u64> {
        (self.answered > 0).then(|| self.answered_ms / self.answered)
    }
}
