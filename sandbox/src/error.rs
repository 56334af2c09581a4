//! Errors of the mechanics, each naming the step that failed.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setup step failed; `step` says what was being done, to what.
    #[error("{step}: {source}")]
    Setup { step: String, source: io::Error },
    /// The sandbox's own setup failed inside the child; the message was
    /// carried back over the error pipe.
    #[error("sandbox setup failed: {0}")]
    Child(String),
    /// The workload could not be executed.
    #[error("cannot execute {program}: {source}")]
    Exec { program: String, source: io::Error },
    /// The sandbox could not be put into its cgroup.
    #[error("placing the sandbox in its cgroup: {0}")]
    Placement(String),
    /// A security mechanism the plan requires is missing from this kernel.
    #[error("{mechanism} is not available on this kernel ({detail}); pass --allow-degraded-security (agent mode only) to run without it")]
    Unsupported {
        mechanism: &'static str,
        detail: String,
    },
}

/// Adds the step description to an `io::Result`.
pub(crate) trait Context<T> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for io::Result<T> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Setup {
            step: step(),
            source,
        })
    }
}
