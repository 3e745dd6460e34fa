//! The error a harness call returns when the guest did not produce a normal result.

use std::fmt;

use crate::response::RunInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HarnessErrorKind {
    /// The guest trapped (panic with `panic = "abort"`, `unreachable`, out of fuel or memory,
    /// a host function error) while instantiating or running.
    Trap,
    /// `incoming-handler.handle` returned without calling `response-outparam.set`.
    NoResponse,
    /// The guest answered `response-outparam.set(err(error-code))`.
    ErrorCode,
    /// The response body ended abnormally (dropped without `outgoing-body.finish`, ...).
    BrokenBody,
    /// The call exceeded the harness's virtual-time bound.
    Timeout,
    /// The harness itself could not run the guest (build, compile, link, bad test request).
    Setup,
}

/// Why a call failed, with whatever the guest printed before it did.
#[derive(Clone, Debug)]
pub struct HarnessError {
    pub kind: HarnessErrorKind,
    pub message: String,
    /// Boxed: keeps `Result<_, HarnessError>` small.
    pub run: Box<RunInfo>,
}

impl HarnessError {
    pub(crate) fn setup(message: String) -> Self {
        HarnessError { kind: HarnessErrorKind::Setup, message, run: Box::default() }
    }

    pub fn is_trap(&self) -> bool {
        self.kind == HarnessErrorKind::Trap
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        // The guest's own log is usually the fastest way to see why it failed.
        for (name, bytes) in [("stdout", &self.run.stdout), ("stderr", &self.run.stderr)] {
            if !bytes.is_empty() {
                write!(f, "\n--- guest {name} ---\n{}", String::from_utf8_lossy(bytes))?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for HarnessError {}
