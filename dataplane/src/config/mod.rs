//! The gateway's configuration: a TOML file ([`ConfigFile`]), the command line laid over it,
//! and the one typed [`RunConfig`] the gateway starts from.
//!
//! Precedence: built-in defaults, then the file, then command-line flags. Every key of the
//! file is optional and names the library setting it fills, so the defaults live in one place
//! (the `Default` of each library type) and the file only says what differs. Unknown keys are
//! refused (a typo must not silently leave a default in force), and every value is checked
//! here, before anything is attached, with a message that names the key and the problem:
//! `tcp.mss: 100 is out of range (536..=1960 with frames of 2048 bytes)`.
//!
//! `docs/configuration.md` lists every key with its default; `xgate check-config FILE` runs
//! the same checks without starting anything.
//!
//! - [`file`]: the file's schema (serde structs, one per section);
//! - `checks`: each section's keys checked and applied, key by key;
//! - [`proxy`]: `[[upstream]]` and `[[route]]`, checked into a [`ProxyConfig`];
//! - [`merge`]: the flags laid over the file, giving the [`RunConfig`];
//! - [`live`]: what a running gateway may take without a restart ([`LiveConfig`]), re-read
//!   from the same file and flags by [`ConfigSource`] when it is asked to reload.

mod checks;
pub mod file;
pub mod live;
pub mod merge;
pub mod proxy;
#[cfg(test)]
mod tests;
pub mod tls;

use std::net::SocketAddrV4;
use std::path::PathBuf;

use crate::gateway::access_log::AccessLogConfig;
use crate::gateway::BypassConfig;
use crate::kernel::KernelConfig;
use crate::logging::LogConfig;
use crate::time::Duration;

pub use file::{
    AccessLogSection, AdminSection, AppSection, BindModeKey, BypassSection, CertificateEntry,
    ConfigFile, HeaderList, HealthCheckEntry, HttpSection, KernelPathSection, LogFormatKey,
    LogSection, PolicyKey, PortEntry, ProxyRouteEntry, RespondEntry, RouteEntry, ServerEntry,
    TcpSection, TlsSection, UpstreamEntry, WakeupKey, XdpModeKey,
};
pub use live::{ConfigSource, LiveConfig};
pub use merge::{build, Overrides};
pub use proxy::{HashKeySource, HealthCheck, ProxyConfig, UpstreamConfig};
pub use tls::TlsConfig;

/// How the kernel path is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelDrive {
    /// `KernelPath::run` on its own thread, optionally pinned. (Driving it from the AF_XDP
    /// poller's loop was measured slower; see docs/architecture.md.)
    Thread { core: Option<usize> },
}

/// Everything `xgate run` starts from.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub gateway: BypassConfig,
    pub kernel: KernelConfig,
    pub kernel_drive: KernelDrive,
    /// `None`: create and remove `<cgroup2 root>/xgate-<iface>`.
    pub cgroup: Option<PathBuf>,
    pub netns: Option<String>,
    pub shutdown_grace: Duration,
    /// Where the admin endpoint (`/metrics`, `/status`) listens; `None`: no endpoint.
    pub admin_listen: Option<SocketAddrV4>,
    /// The log's levels and format (`RUST_LOG` overrides the levels).
    pub log: LogConfig,
    /// One line per request; `None`: no access log.
    pub access_log: Option<AccessLogConfig>,
    /// The reverse proxy's pools and routes (`[[upstream]]`, `[[route]]`).
    pub proxy: ProxyConfig,
    /// The TLS ports and their certificates.
    pub tls: TlsConfig,
}

/// A configuration the gateway refuses, naming the key (`tcp.mss`, `ports[2].port`, or the
/// command-line flag) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// A TOML syntax error, a value of the wrong type or an unknown key (toml's message
    /// names the line, the column and the key).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// An interface name Linux accepts (IFNAMSIZ - 1 bytes, no '/' or whitespace); also what
/// keeps `/run/xgate/<iface>.*` and the pin directory inside their folders.
pub fn valid_iface(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b.is_ascii_whitespace() || b == 0)
}
