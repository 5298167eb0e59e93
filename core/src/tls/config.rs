//! A TLS port's settings, checked and built once (at start and at each reload), then shared by
//! every thread that serves the port: the rustls `ServerConfig` (certificates by server name,
//! versions, ALPN, tickets and the session cache) and the policies rustls does not decide.
//!
//! Certificates come in as PEM bytes with a label each (the dataplane passes the file names),
//! so every refusal names what to fix: a file with no certificate or key, a key that is not
//! the certificate's, a server name the certificate does not cover.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::time::Duration;

/// The ALPN protocol a TLS port speaks (RFC 7301): a client that offers ALPN without it gets
/// `no_application_protocol`; one that offers none is served HTTP/1.1 anyway.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The oldest TLS version a port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3 (the default, as nginx's `ssl_protocols TLSv1.2 TLSv1.3`).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// What a ClientHello whose server name (SNI) matches no certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownServerName {
    /// The default certificate (as nginx's default server).
    #[default]
    Default,
    /// A fatal `unrecognized_name` alert (RFC 6066 §3) and a close.
    Reject,
}

/// The policies of a TLS port beside its certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsOptions {
    pub min_version: MinVersion,
    pub unknown_server_name: UnknownServerName,
    /// A handshake not finished this long after the connection opened is closed.
    pub handshake_timeout: Duration,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            min_version: MinVersion::Tls12,
            unknown_server_name: UnknownServerName::Default,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// One certificate chain and its key, as PEM, with the names it serves.
#[derive(Debug, Clone, Copy)]
pub struct CertificatePem<'a> {
    /// Where the chain came from (a file name), for errors.
    pub cert_label: &'a str,
    /// The end-entity certificate first, then its intermediates.
    pub cert_chain: &'a [u8],
    pub key_label: &'a str,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key: &'a [u8],
    /// DNS names (`example.com`, or `*.example.com` for one label under it) this chain serves;
    /// each must be covered by the certificate.
    pub server_names: &'a [String],
    /// Served to clients that send no server name, or one no certificate has (unless
    /// `UnknownServerName::Reject`). At most one; without one, the first certificate.
    pub default: bool,
}

/// Why a TLS configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("a TLS port needs at least one certificate")]
    NoCertificates,
    #[error("{label}: {what}")]
    Pem { label: String, what: String },
    #[error("{label}: no certificate in the PEM file")]
    NoCertificate { label: String },
    #[error("{label}: the private key is not usable: {err}")]
    Key { label: String, err: rustls::Error },
    #[error("{key}: this private key is not the one of the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("{label}: the certificate cannot be read: {err}")]
    Certificate { label: String, err: String },
    #[error("{label}: server name {name:?} is not a DNS name")]
    BadName { label: String, name: String },
    #[error("{label}: the certificate does not cover server name {name:?}")]
    NameNotCovered { label: String, name: String },
    #[error("server name {name:?} has two certificates with the same kind of key ({first} and {second})")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error("two certificates are marked default ({first} and {second})")]
    TwoDefaults { first: String, second: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What every TLS port shares for the life of the process, across reloads: the ticket keys
/// (rustls' rotator: a new key every 6 hours, tickets accepted for 12) and the session cache
/// for clients without tickets. One ticket key for every poller and the kernel path, so a
/// session resumes whichever thread serves the next connection.
#[derive(Clone)]
pub struct TlsShared {
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl fmt::Debug for TlsShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsShared").finish_non_exhaustive()
    }
}

impl TlsShared {
    /// Fresh ticket keys and a session cache of `session_cache` entries (0: no cache; clients
    /// without tickets then always make a full handshake).
    pub fn new(session_cache: usize) -> Result<Self, TlsConfigError> {
        let sessions: Arc<dyn StoresServerSessions> = if session_cache == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new(session_cache)
        };
        Ok(TlsShared {
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            sessions,
        })
    }
}

/// A TLS port's checked settings, shared (`Arc`) by every thread and every connection that
/// opened under them: a reload builds new ones, and connections keep the ones they began with.
#[derive(Debug)]
pub struct TlsSettings {
    config: Arc<ServerConfig>,
    certs: Arc<CertsByName>,
    options: TlsOptions,
}

impl TlsSettings {
    /// Checks and builds a port's settings from its certificates.
    pub fn build(
        certs: &[CertificatePem<'_>],
        options: TlsOptions,
        shared: &TlsShared,
    ) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = Arc::new(CertsByName::load(certs, &provider)?);
        let versions: &[&rustls::SupportedProtocolVersion] = match options.min_version {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        config.ticketer = shared.ticketer.clone();
        config.session_storage = shared.sessions.clone();
        // No 0-RTT: early data can be replayed, and a gateway cannot know which requests
        // behind it are safe to replay.
        config.max_early_data_size = 0;
        Ok(TlsSettings {
            config: Arc::new(config),
            certs,
            options,
        })
    }

    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    pub(crate) fn server_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Whether a ClientHello naming `server_name` (or none) is to be refused with
    /// `unrecognized_name`.
    pub(crate) fn refuses_name(&self, server_name: Option<&str>) -> bool {
        self.options.unknown_server_name == UnknownServerName::Reject
            && server_name.is_some_and(|name| !self.certs.has(name))
    }

    /// Whether `server_name` has a certificate of its own (not the default's).
    pub(crate) fn knows_name(&self, server_name: &str) -> bool {
        self.certs.has(server_name)
    }
}

/// Which listening ports speak TLS, each with its settings: one generation, shared by every
/// thread through its `App` (a reload makes a new one).
#[derive(Debug, Default)]
pub struct TlsPorts {
    ports: Vec<(u16, Arc<TlsSettings>)>,
}

impl TlsPorts {
    pub fn new(ports: Vec<(u16, Arc<TlsSettings>)>) -> Self {
        TlsPorts { ports }
    }

    /// The settings of `port`, if it speaks TLS (a few ports: a linear search).
    pub fn get(&self, port: u16) -> Option<&Arc<TlsSettings>> {
        self.ports.iter().find(|(p, _)| *p == port).map(|(_, s)| s)
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().map(|(p, _)| *p)
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// The certificates of a port by server name: exact names, then wildcards one label deep,
/// then the default. A name may have one chain per kind of key (ECDSA, RSA, Ed25519): the
/// client gets the first whose signature schemes it offered.
#[derive(Debug)]
pub(crate) struct CertsByName {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
}

impl CertsByName {
    fn load(
        pems: &[CertificatePem<'_>],
        provider: &CryptoProvider,
    ) -> Result<Self, TlsConfigError> {
        if pems.is_empty() {
            return Err(TlsConfigError::NoCertificates);
        }
        let mut by_name = CertsByName {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: Vec::new(),
        };
        // Which file gave each (name, key kind), to name both in a duplicate's error.
        let mut origin: HashMap<(String, u8), String> = HashMap::new();
        let mut default_label: Option<&str> = None;
        for pem in pems {
            let key = load_key(pem, provider)?;
            // SignatureAlgorithm is not `Hash`: its wire value is.
            let algorithm = u8::from(key.key.algorithm());
            for raw in pem.server_names {
                let name = normalise(raw);
                check_name_covered(pem, &key, &name)?;
                if let Some(first) = origin.insert((name.clone(), algorithm), pem.cert_label.into())
                {
                    return Err(TlsConfigError::DuplicateName {
                        name,
                        first,
                        second: pem.cert_label.into(),
                    });
                }
                let table = match name.strip_prefix("*.") {
                    Some(parent) => by_name.wildcard.entry(parent.to_string()),
                    None => by_name.exact.entry(name),
                };
                table.or_default().push(key.clone());
            }
            if pem.default {
                if let Some(first) = default_label {
                    return Err(TlsConfigError::TwoDefaults {
                        first: first.into(),
                        second: pem.cert_label.into(),
                    });
                }
                default_label = Some(pem.cert_label);
            }
        }
        // The default: the chains of the certificate marked so (every kind of key among the
        // entries with its file), else of the first one.
        let default_cert = default_label.unwrap_or(pems[0].cert_label);
        for pem in pems.iter().filter(|p| p.cert_label == default_cert) {
            by_name.default.push(load_key(pem, provider)?);
        }
        Ok(by_name)
    }

    fn lookup(&self, name: &str) -> Option<&[Arc<CertifiedKey>]> {
        let name = normalise(name);
        if let Some(keys) = self.exact.get(&name) {
            return Some(keys);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).map(Vec::as_slice)
    }

    fn has(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }
}

impl ResolvesServerCert for CertsByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let keys = hello
            .server_name()
            .and_then(|name| self.lookup(name))
            .unwrap_or(&self.default);
        keys.iter()
            .find(|key| usable(&hello, key.key.algorithm()))
            .or_else(|| keys.first())
            .cloned()
    }
}

/// Whether the client can take a certificate whose key is of `algorithm`: it offered a
/// signature scheme of that kind, and a cipher suite that can use it (any TLS 1.3 suite; in
/// TLS 1.2, ECDHE_ECDSA or ECDHE_RSA as the key).
fn usable(hello: &ClientHello<'_>, algorithm: rustls::SignatureAlgorithm) -> bool {
    use rustls::SignatureAlgorithm as A;
    let suite_ok = hello.cipher_suites().iter().any(|suite| {
        let name = suite.as_str().unwrap_or("");
        name.starts_with("TLS13_")
            || match algorithm {
                A::ECDSA | A::ED25519 => name.starts_with("TLS_ECDHE_ECDSA_"),
                A::RSA => name.starts_with("TLS_ECDHE_RSA_"),
                _ => false,
            }
    });
    suite_ok && offered(hello.signature_schemes(), algorithm)
}

/// Whether the client offered a signature scheme of a key of `algorithm`.
fn offered(schemes: &[SignatureScheme], algorithm: rustls::SignatureAlgorithm) -> bool {
    use rustls::SignatureAlgorithm as A;
    use SignatureScheme as S;
    schemes.iter().any(|s| match algorithm {
        A::ECDSA => matches!(
            s,
            S::ECDSA_NISTP256_SHA256 | S::ECDSA_NISTP384_SHA384 | S::ECDSA_NISTP521_SHA512
        ),
        A::RSA => matches!(
            s,
            S::RSA_PSS_SHA256
                | S::RSA_PSS_SHA384
                | S::RSA_PSS_SHA512
                | S::RSA_PKCS1_SHA256
                | S::RSA_PKCS1_SHA384
                | S::RSA_PKCS1_SHA512
        ),
        A::ED25519 => *s == S::ED25519,
        _ => false,
    })
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn load_key(
    pem: &CertificatePem<'_>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(pem.cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            label: pem.cert_label.into(),
            what: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            label: pem.cert_label.into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(pem.key).map_err(|e| TlsConfigError::Pem {
        label: pem.key_label.into(),
        what: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no private key in the PEM file".into(),
            other => other.to_string(),
        },
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|err| match err {
        rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
            cert: pem.cert_label.into(),
            key: pem.key_label.into(),
        },
        rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidEncryptedClientHello(_) => {
            TlsConfigError::Certificate {
                label: pem.cert_label.into(),
                err: err.to_string(),
            }
        }
        err => TlsConfigError::Key {
            label: pem.key_label.into(),
            err,
        },
    })?;
    Ok(Arc::new(key))
}

/// Refuses a configured name the certificate does not cover (a wildcard name is checked with
/// one label under it).
fn check_name_covered(
    pem: &CertificatePem<'_>,
    key: &CertifiedKey,
    name: &str,
) -> Result<(), TlsConfigError> {
    let bad = || TlsConfigError::BadName {
        label: pem.cert_label.into(),
        name: name.into(),
    };
    let probe = match name.strip_prefix("*.") {
        Some(parent) if !parent.contains('*') => format!("xgate-wildcard-check.{parent}"),
        Some(_) => return Err(bad()),
        None => name.to_string(),
    };
    let server_name = match ServerName::try_from(probe.as_str()) {
        Ok(n @ ServerName::DnsName(_)) => n,
        _ => return Err(bad()),
    };
    let cert = key
        .end_entity_cert()
        .map_err(|e| TlsConfigError::Certificate {
            label: pem.cert_label.into(),
            err: e.to_string(),
        })?;
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| TlsConfigError::Certificate {
        label: pem.cert_label.into(),
        err: e.to_string(),
    })?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|_| TlsConfigError::NameNotCovered {
            label: pem.cert_label.into(),
            name: name.into(),
        })
}
