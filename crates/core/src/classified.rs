//! The classified load's upload: download the log object, classify each record as it streams
//! (a usage-log row or an audit entry: [`crate::source::LogSource`]), and send the events as
//! newline-delimited JSON through a resumable upload session.
//!
//! Memory is bounded whatever the object's size: one download read buffer, one chunk of
//! NDJSON (`GCR_USAGE_UPLOAD_CHUNK_KIB`), one row, and a window of recent request ids. The
//! last chunk — the one that creates the job — is sent only after the whole object was read
//! and its CRC32C and length matched what Cloud Storage promised, so a corrupted or truncated
//! download loads nothing: the half-filled session is simply abandoned.
//!
//! [`crate::session::LoadSession`] decides *whether* to upload (its probe found no job) and
//! interprets BigQuery's final answer (job, 409, errors) exactly like a `jobs.insert` answer.

use std::io::Read;
use std::time::Duration;

use crate::bigquery::{ErrorClass, GoogleError};
use crate::budget::Budget;
use crate::ndjson::LineBuffer;
use crate::object::ObjectRef;
use crate::outcome::{FileCounts, LoadError};
use crate::service::{Io, Streamed};
use crate::session::{NoAnswer, Reply};
use crate::source::{LogSource, SourceError};
use crate::storage::{Checked, Expected};
use crate::upload;
use crate::url::Endpoint;

/// Duplicate request ids are looked for among the last this many rows (~10 MB of log, ~400 KB
/// of memory): the reader's exact mode would grow with the file, and the views count distinct
/// ids anyway (`registry_events_unique`), so a duplicate further apart is still counted once.
pub const DEDUP_WINDOW: usize = 16_384;
/// Malformed rows named in the answer (the rest are counted).
const MALFORMED_SAMPLES: usize = 5;
/// Tries per chunk before the whole upload is given up (and retried by the session).
const CHUNK_TRIES: u32 = 4;
/// Error bodies from Cloud Storage are read up to this size for the message.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Everything one upload needs, prepared by the session.
#[derive(Debug)]
pub struct UploadPlan {
    /// Opens the session: `LoadSpec::upload_request` (`BatchLoad::upload_request` for a batch).
    pub initiate: http::Request<Vec<u8>>,
    /// The objects whose events the upload carries, in order: one for an event, many for a
    /// backfill batch. Every one is read and verified before the last chunk creates the job.
    pub sources: Vec<UploadSource>,
    pub bigquery: Endpoint,
    pub token: Option<crate::secret::Secret>,
    pub chunk: usize,
    /// The event's budget, lent by the session: every request, sleep and retry of the upload
    /// is decided by it, and it goes back in the report with what was spent.
    pub budget: Budget,
}

/// One object of an upload.
#[derive(Debug)]
pub struct UploadSource {
    /// The pinned download: `storage::download_request`.
    pub download: http::Request<Vec<u8>>,
    pub object: ObjectRef,
    /// Which log the object is: a usage log or an audit-log sink object ([`crate::source`]).
    pub kind: crate::log_name::LogKind,
}

/// How an upload ended, for the session to interpret.
#[derive(Debug)]
pub enum UploadEnd {
    /// BigQuery's answer to the session request or to the last chunk (the job, a 409, an error):
    /// interpreted like a `jobs.insert` answer.
    Answered(Box<Reply>),
    /// Worth another try from the start (download or chunk trouble); no job was created.
    Transient(String),
    /// Another try cannot help.
    Fatal(LoadError),
    /// The event's budget is spent: the trigger must redeliver (the message says why).
    OutOfBudget(String),
}

#[derive(Debug)]
pub struct UploadReport {
    pub end: UploadEnd,
    /// One per source read to its end, in order.
    pub counts: Vec<FileCounts>,
    /// The source whose download or content ended the upload ([`UploadEnd::Fatal`] or
    /// [`UploadEnd::Transient`] caused by reading it), when one did.
    pub failed_source: Option<usize>,
    /// The budget lent with the plan, with the time spent and the chunk failures it counted.
    pub budget: Budget,
}

pub fn run_upload(plan: UploadPlan, io: &mut impl Io) -> UploadReport {
    let mut uploader = Uploader { plan, counts: Vec::new(), reading: None, blamed: None };
    let end = match uploader.run(io) {
        Ok(end) | Err(end) => end,
    };
    UploadReport { end, counts: uploader.counts, failed_source: uploader.blamed, budget: uploader.plan.budget }
}

struct Uploader {
    plan: UploadPlan,
    counts: Vec<FileCounts>,
    /// The source being read (`None` before the first and after the last).
    reading: Option<usize>,
    /// The source whose download or content ended the upload (not a chunk's trouble).
    blamed: Option<usize>,
}

/// Where the chunks go and how far the server has them.
struct Session {
    url: String,
    /// Bytes of the upload the server holds.
    persisted: u64,
}

impl Uploader {
    fn run(&mut self, io: &mut impl Io) -> Result<UploadEnd, UploadEnd> {
        let timeout = self.timeout(io)?;
        let initiate = std::mem::replace(&mut self.plan.initiate, http::Request::new(Vec::new()));
        let response = match io.send(initiate, timeout) {
            Reply::Response(r) if r.status().is_success() => r,
            Reply::Failed(why) => return Err(UploadEnd::Transient(format!("BigQuery upload session: {why}"))),
            Reply::Refused { origin, why } => return Err(refused("BigQuery upload session", &origin, &why)),
            answer => return Ok(UploadEnd::Answered(Box::new(answer))),
        };
        let url = upload::session_url(&response, &self.plan.bigquery)
            .map_err(|why| UploadEnd::Fatal(LoadError::UpstreamRejected(format!("BigQuery upload session: {why}"))))?;
        let mut session = Session { url, persisted: 0 };

        let chunk = self.plan.chunk;
        let mut buffer = LineBuffer::with_capacity(chunk + chunk / 4);
        let sources = std::mem::take(&mut self.plan.sources);
        for (index, source) in sources.into_iter().enumerate() {
            self.reading = Some(index);
            self.read_source(io, source, &mut session, &mut buffer)?;
        }
        self.reading = None;
        let total = session.persisted + buffer.len() as u64;
        let answer = self.send_chunk(io, &mut session, buffer.as_bytes(), Some(total))?;
        Ok(UploadEnd::Answered(Box::new(Reply::Response(answer.expect("the last chunk is answered with the job")))))
    }

    /// Streams one object's events into the upload, chunk by chunk; the object must read to
    /// its end and match its promised length and CRC32C.
    fn read_source(
        &mut self,
        io: &mut impl Io,
        source: UploadSource,
        session: &mut Session,
        buffer: &mut LineBuffer,
    ) -> Result<(), UploadEnd> {
        let UploadSource { download, object, kind } = source;
        let blame = |uploader: &mut Uploader, end: UploadEnd| {
            uploader.blamed = uploader.reading;
            end
        };
        let streamed = self.open_download(io, download, &object).map_err(|end| blame(self, end))?;
        let expected = Expected::from_headers(&streamed.headers);
        let mut reader = LogSource::open(kind, Checked::new(streamed.body), &object, DEDUP_WINDOW, MALFORMED_SAMPLES);
        let chunk = self.plan.chunk;
        loop {
            match reader.next_event(|event| crate::ndjson::write_line(event, buffer)) {
                Ok(Some(())) => {
                    while buffer.len() >= chunk {
                        self.send_chunk(io, session, &buffer.as_bytes()[..chunk], None)?;
                        buffer.consume(chunk);
                    }
                }
                Ok(None) => break,
                Err(SourceError::Io(e)) => {
                    let end = UploadEnd::Transient(format!(
                        "reading {} failed after {} records: {e}; nothing of it was loaded",
                        object.gs_uri(),
                        reader.records()
                    ));
                    return Err(blame(self, end));
                }
                Err(SourceError::NotThisKind(why)) => {
                    let end = UploadEnd::Fatal(LoadError::InvalidInput(format!("{}: {why}", object.gs_uri())));
                    return Err(blame(self, end));
                }
            }
        }
        let (checked, counts) = reader.finish(Checked::bytes_read);
        if let Err(why) = checked.verify(&expected) {
            return Err(blame(self, UploadEnd::Transient(format!("{}: {why}; nothing was loaded", object.gs_uri()))));
        }
        self.counts.push(counts);
        Ok(())
    }

    fn open_download(
        &mut self,
        io: &mut impl Io,
        download: http::Request<Vec<u8>>,
        object: &ObjectRef,
    ) -> Result<Streamed, UploadEnd> {
        let timeout = self.timeout(io)?;
        let uri = object.gs_uri();
        let mut streamed = io.open(download, timeout).map_err(|no_answer| match no_answer {
            NoAnswer::Refused { origin, why } => refused(&format!("Cloud Storage download of {uri}"), &origin, &why),
            NoAnswer::Failed(why) => UploadEnd::Transient(format!("Cloud Storage download of {uri}: {why}")),
        })?;
        if (200..300).contains(&streamed.status) {
            return Ok(streamed);
        }
        let mut body = Vec::new();
        let _ = (&mut streamed.body).take(ERROR_BODY_BYTES as u64).read_to_end(&mut body);
        let error = GoogleError::from_response(streamed.status, &body);
        let generation = object.generation.map_or(String::new(), |g| format!(" generation {g}"));
        Err(match (streamed.status, error.class()) {
            (_, ErrorClass::Transient) => {
                UploadEnd::Transient(format!("Cloud Storage download of {uri} answered {error}"))
            }
            (404, _) => UploadEnd::Fatal(LoadError::UpstreamRejected(format!(
                "Cloud Storage has no {uri}{generation} (deleted or replaced before it was read): {error}"
            ))),
            (401 | 403, _) => UploadEnd::Fatal(LoadError::UpstreamRejected(format!(
                "Cloud Storage refused to read {uri}: {error}; the loader's service account needs roles/storage.objectViewer on the log bucket"
            ))),
            _ => UploadEnd::Fatal(LoadError::UpstreamRejected(format!(
                "Cloud Storage download of {uri} answered {error}"
            ))),
        })
    }

    /// Sends `data`, which starts at the session's persisted offset, until the server holds all
    /// of it. The last chunk (`total` known) returns the final answer; the others `None`.
    fn send_chunk(
        &mut self,
        io: &mut impl Io,
        session: &mut Session,
        data: &[u8],
        total: Option<u64>,
    ) -> Result<Option<http::Response<Vec<u8>>>, UploadEnd> {
        let base = session.persisted;
        let end = base + data.len() as u64;
        let mut tries = 0;
        loop {
            if session.persisted == end && total.is_none() {
                return Ok(None); // a lost answer, but the session holds the chunk
            }
            tries += 1;
            let timeout = self.timeout(io)?;
            let from = (session.persisted - base) as usize;
            let token = self.plan.token.as_ref().map(crate::secret::Secret::expose);
            let request = upload::chunk_request(&session.url, token, session.persisted, &data[from..], total);
            let trouble = match io.send_borrowed(request, timeout) {
                Reply::Response(r) if r.status().is_success() => {
                    self.plan.budget.progressed();
                    return if total.is_some() {
                        Ok(Some(r))
                    } else {
                        // A session that completes before its total was named: not a job we can trust.
                        Err(UploadEnd::Answered(Box::new(Reply::Response(r))))
                    };
                }
                Reply::Response(r) if r.status().as_u16() == 308 => match upload::persisted(&r) {
                    Some(held) if (base..=end).contains(&held) => {
                        session.persisted = held;
                        if held == end && total.is_none() {
                            self.plan.budget.progressed();
                            continue;
                        }
                        format!("the upload session holds {held} of {end} bytes")
                    }
                    _ => return Err(UploadEnd::Transient("the upload session lost bytes already sent".into())),
                },
                Reply::Response(r) => {
                    let error = GoogleError::from_response(r.status().as_u16(), r.body());
                    if error.class() != ErrorClass::Transient {
                        return Err(UploadEnd::Answered(Box::new(Reply::Response(r))));
                    }
                    format!("answered {error}")
                }
                Reply::Failed(why) => why,
                Reply::Refused { origin, why } => return Err(refused("BigQuery upload", &origin, &why)),
            };
            let what = format!("BigQuery upload of bytes {base}-{}: {trouble}", end.saturating_sub(1));
            if tries >= CHUNK_TRIES {
                return Err(UploadEnd::Transient(format!("{what} (after {tries} tries)")));
            }
            // The event's budget decides, as for the session's own retries: counted, and never
            // slept past its end.
            let delay = self.plan.budget.retry(what, io.now_ms()).map_err(UploadEnd::OutOfBudget)?;
            io.sleep(delay);
            self.resume(io, session, base, end)?;
        }
    }

    /// After a lost or failed chunk: ask the session how much it holds before resending.
    fn resume(&mut self, io: &mut impl Io, session: &mut Session, base: u64, end: u64) -> Result<(), UploadEnd> {
        let timeout = self.timeout(io)?;
        let request = upload::status_request(&session.url, self.plan.token.as_ref().map(crate::secret::Secret::expose));
        match io.send(request, timeout) {
            Reply::Response(r) if r.status().as_u16() == 308 => match upload::persisted(&r) {
                Some(held) if (base..=end).contains(&held) => {
                    session.persisted = held;
                    Ok(())
                }
                _ => Err(UploadEnd::Transient("the upload session lost bytes already sent".into())),
            },
            // Complete already (the lost answer was the job's): the final chunk's resend will
            // get the job again, or a 409 the session turns into reading it.
            Reply::Response(r) if r.status().is_success() => Ok(()),
            Reply::Response(r) => Err(UploadEnd::Transient(format!(
                "BigQuery upload status answered {}",
                GoogleError::from_response(r.status().as_u16(), r.body())
            ))),
            Reply::Failed(why) => Err(UploadEnd::Transient(format!("BigQuery upload status: {why}"))),
            Reply::Refused { origin, why } => Err(refused("BigQuery upload status", &origin, &why)),
        }
    }

    /// The next request's timeout, or the end of the upload when the budget is spent.
    fn timeout(&self, io: &mut impl Io) -> Result<Duration, UploadEnd> {
        self.plan.budget.request_timeout(io.now_ms()).ok_or_else(|| {
            UploadEnd::OutOfBudget(
                "the event's time budget ran out during the upload (classified loads download and upload the whole log within GCR_USAGE_WAIT_SECONDS; raise it for large logs)".into(),
            )
        })
    }
}

/// A request the host would not send (its outbound policy): retrying cannot help.
fn refused(what: &str, origin: &str, why: &str) -> UploadEnd {
    UploadEnd::Fatal(Reply::refused_error(what, origin, why))
}

#[cfg(test)]
mod tests;
