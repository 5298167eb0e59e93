//! What a running gateway reports about itself: the state file it rewrites every
//! [`REFRESH`] ([`RuntimeState`], `/run/xgate/<iface>.json`) and the [`Status`] built from that
//! file and the steering maps.
//!
//! Shared by two sides that must not depend on each other: the running process
//! ([`crate::gateway`]) writes the file and serves the status on its admin endpoint; the
//! operator's commands ([`crate::ctl`]) read the file to show the status and to learn what
//! became of a reload. Keeping the schema here, below both, lets each import it without the
//! process importing the client commands or the reverse.

mod state;
mod status;

use std::io;
use std::path::{Path, PathBuf};

use crate::bpf::SteeringError;

pub use state::{
    state_path, unix_ms, AccessLogState, KernelState, PollerState, ReloadState, RuntimeState,
    ServedPort, REFRESH,
};
pub use status::{PathStatus, PortStatus, Status};

/// Why the state file or the steering maps could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A pinned map operation failed.
    #[error(transparent)]
    Steering(#[from] SteeringError),
    /// A file operation failed.
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl ReportError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| ReportError::Io { what, path, source }
    }
}
