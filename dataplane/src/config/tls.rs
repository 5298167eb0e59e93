//! `[tls]` and the ports with `tls = true`, checked into a [`TlsConfig`], and the files it
//! names read into the TLS ports' settings ([`TlsConfig::load`]) at start, at each reload and
//! by `xgate check-config`: a certificate or key that cannot be used is refused with its file.

use std::path::PathBuf;
use std::sync::Arc;

use crate::time::Duration;
use crate::tls::{
    CertificatePem, MinVersion, TlsOptions, TlsPorts, TlsSettings, TlsShared, UnknownServerName,
    DEFAULT_HANDSHAKES_PER_ROUND,
};

use super::checks::in_range;
use super::file::{CertificateEntry, TlsSection, TlsVersionKey, UnknownServerNameKey};
use super::{invalid, ConfigError};

/// Default `[tls] session_cache`: sessions for clients that resume without tickets.
pub const DEFAULT_SESSION_CACHE: usize = 10_240;

/// The checked `[tls]`: which ports speak TLS and what they serve.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// Served ports with `tls = true`.
    pub ports: Vec<u16>,
    pub certificates: Vec<CertificateEntry>,
    pub options: TlsOptions,
    pub session_cache: usize,
    /// Handshakes each serving thread starts per round (0: no bound).
    pub handshakes_per_round: u32,
}

impl TlsConfig {
    /// Reads the certificate files and builds the TLS ports' settings on `shared` (the ticket
    /// keys and session cache of this process); `None` when no port speaks TLS.
    pub fn load(&self, shared: &TlsShared) -> Result<Option<Arc<TlsPorts>>, ConfigError> {
        if self.ports.is_empty() {
            return Ok(None);
        }
        let read = |key: String, path: &PathBuf| {
            std::fs::read(path).map_err(|e| invalid(key, format!("{}: {e}", path.display())))
        };
        let mut files = Vec::with_capacity(self.certificates.len());
        for (i, c) in self.certificates.iter().enumerate() {
            let chain = read(format!("tls.certificate[{i}].cert"), &c.cert)?;
            let key = read(format!("tls.certificate[{i}].key"), &c.key)?;
            files.push((
                c.cert.display().to_string(),
                chain,
                c.key.display().to_string(),
                key,
            ));
        }
        let pems: Vec<CertificatePem<'_>> = self
            .certificates
            .iter()
            .zip(&files)
            .map(|(c, (cert_label, chain, key_label, key))| CertificatePem {
                cert_label,
                cert_chain: chain,
                key_label,
                key,
                server_names: &c.server_names,
                default: c.default,
            })
            .collect();
        let settings = TlsSettings::build(&pems, self.options, shared)
            .map_err(|e| invalid("tls.certificate", e.to_string()))?;
        let settings = Arc::new(settings);
        let ports = self
            .ports
            .iter()
            .map(|&p| (p, Arc::clone(&settings)))
            .collect();
        Ok(Some(Arc::new(TlsPorts::new(ports))))
    }
}

/// `[tls]` for the served ports `tls_ports` (those with `tls = true`), its files read and
/// checked.
pub(super) fn tls_section(
    section: &TlsSection,
    tls_ports: Vec<u16>,
) -> Result<TlsConfig, ConfigError> {
    let mut options = TlsOptions::default();
    if let Some(v) = section.min_version {
        options.min_version = match v {
            TlsVersionKey::V12 => MinVersion::Tls12,
            TlsVersionKey::V13 => MinVersion::Tls13,
        };
    }
    if let Some(u) = section.unknown_server_name {
        options.unknown_server_name = match u {
            UnknownServerNameKey::Default => UnknownServerName::Default,
            UnknownServerNameKey::Reject => UnknownServerName::Reject,
        };
    }
    if let Some(ms) = section.handshake_timeout_ms {
        let ms = in_range("tls.handshake_timeout_ms", ms, 100..=300_000)?;
        options.handshake_timeout = Duration::from_millis(ms);
    }
    let session_cache = match section.session_cache {
        Some(n) => in_range("tls.session_cache", n, 0..=1_000_000)?,
        None => DEFAULT_SESSION_CACHE,
    };
    let handshakes_per_round = match section.handshakes_per_round {
        Some(n) => in_range("tls.handshakes_per_round", n, 0..=65_536)?,
        None => DEFAULT_HANDSHAKES_PER_ROUND,
    };
    if !tls_ports.is_empty() && section.certificate.is_empty() {
        return Err(invalid(
            "tls.certificate",
            format!(
                "port {} has tls = true, and [[tls.certificate]] lists no certificate",
                tls_ports[0]
            ),
        ));
    }
    for (i, c) in section.certificate.iter().enumerate() {
        if c.server_names.is_empty() && !c.default {
            return Err(invalid(
                format!("tls.certificate[{i}].server_names"),
                "empty: give the names this certificate serves, or mark it default = true",
            ));
        }
    }
    let config = TlsConfig {
        ports: tls_ports,
        certificates: section.certificate.clone(),
        options,
        session_cache,
        handshakes_per_round,
    };
    // The files are read and checked now, so a bad one is refused before anything starts
    // (and by `xgate check-config`); the running gateway reads them again with its own keys.
    let probe = TlsShared::new(0).map_err(|e| invalid("tls", e.to_string()))?;
    config.load(&probe)?;
    Ok(config)
}
