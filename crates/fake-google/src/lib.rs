//! One scripted fake of the Google endpoints the loader talks to, shared by every test runner:
//! the core's native tests call [`Google::answer`] from their `Io`, the wasmtime harness routes
//! the component's outbound requests to it, and both play the same [`scenario`]s.
//!
//! [`Google`] is a state machine with no I/O and no clock: a request in, an [`Exchange`] out.
//! It keeps what the real services keep — Cloud Storage objects pinned by generation with their
//! CRC32C, BigQuery jobs, resumable upload sessions that answer `308` + `Range` until the last
//! chunk names the total — so a retried, resumed or redelivered load meets the state its earlier
//! tries left behind. Faults are scripted per [`Endpoint`]; protocol violations by the client
//! (a chunk out of order, a chunk that is not a multiple of 256 KiB) are answered as Google
//! answers them *and* recorded, so a test can insist there were none.

pub mod answers;
mod endpoint;
mod google;
pub mod logs;
pub mod scenario;

pub use answers::{JobRef, crc32c_header, duplicate_job, google_error, job_resource};
pub use endpoint::Endpoint;
pub use google::{Exchange, Fault, Google, Seen, StreamedBody, Tampering};
