//! TLS termination (rustls), the same on both paths.
//!
//! rustls is sans-IO, as the rest of the core: ciphertext in, ciphertext out. A TLS port's
//! connection keeps a [`TlsConn`] beside its `HttpConn`; the path's loop hands it the
//! transport's buffers where it would hand HTTP's, and the `TlsConn` runs HTTP over the
//! decrypted bytes (`conn.rs`). The port's certificates, versions and policies are checked
//! and built once into a [`TlsSettings`] shared by every thread (`config.rs`); a reload builds
//! new ones and each connection keeps those it began with. [`TlsStats`] counts handshakes,
//! versions, suites and failures per thread (`stats.rs`).
//!
//! rustls reads the wall clock itself for session tickets' ages and key rotation; nothing in
//! this module does.

mod config;
mod conn;
mod stats;

pub use config::{
    CertificatePem, MinVersion, TlsConfigError, TlsOptions, TlsPorts, TlsSettings, TlsShared,
    UnknownServerName, ALPN_HTTP11,
};
pub use conn::TlsConn;
pub use stats::{
    suite_name, TlsFailure, TlsStats, TlsThread, DEFAULT_HANDSHAKES_PER_ROUND, SUITES,
};

#[cfg(test)]
mod tests;
