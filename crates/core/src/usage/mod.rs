//! Usage logs, read and understood: the streaming [`UsageLogReader`] turns a usage-log object
//! into typed [`UsageRow`]s (tolerating what real files do), and [`classify`] turns each row
//! into a [`RegistryEvent`] — registry host, project, repository, digest, action, client, caller.
//!
//! Pure like the rest of the core: the reader takes any `io::Read`, so the component can feed
//! it a download stream, the CLI a file, and tests a byte slice.

pub mod classify;
/// The csv crate with the line numbering the reader used before [`records`]: the test oracle.
#[cfg(test)]
mod lines;
pub mod reader;
mod records;
pub mod registry;
pub(crate) mod request_ids;
pub mod row;
pub mod user_agent;

pub use classify::{classify, classify_with};
pub use reader::{Dedup, HeaderKind, Malformed, ReadError, ReadStats, ReaderOptions, UsageLogReader};
pub use records::MAX_RECORD_BYTES;
pub use row::{MalformedReason, UsageRow};
pub use user_agent::{ClientFamily, ClientMemo};

#[cfg(test)]
pub(crate) mod fixture_tests;
