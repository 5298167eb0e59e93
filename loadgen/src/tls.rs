//! HTTPS (issue 16): the rustls client settings of a run, built once before it, and what a
//! connection's handshake negotiated.
//!
//! The worker drives each connection's [`ClientConnection`] sans-IO over its own non-blocking
//! socket (`read_tls` / `process_new_packets` / `write_tls`, `worker.rs`), so TLS changes
//! nothing in how connections are polled. rustls' buffered API allocates per TLS record (a
//! `Vec` for each record it encrypts and for each it decrypts): two small allocations per
//! request and response, which loadgen's plain-HTTP path does not have. Everything else stays
//! preallocated: ciphertext is read into the thread's one read buffer and plaintext drained
//! into one buffer per thread.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{aws_lc_rs, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup,
    SignatureScheme,
};
use thiserror::Error;

/// TLS 1.3 tickets kept for resumption (a run has one server name). rustls' own cache keeps
/// 8 per server, fewer than the connections a churn run has open at once: with 32, about half
/// of them found no ticket and made a full handshake (measured against a rustls server that
/// sends 2 tickets per connection; with 8 connections 99.6% resumed). A ticket is a few
/// hundred bytes.
const TICKETS: usize = 1024;

/// Which TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    V12,
    /// TLS 1.3 only.
    V13,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Option<TlsVersion> {
        match s {
            "1.2" => Some(TlsVersion::V12),
            "1.3" => Some(TlsVersion::V13),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

/// The key exchange the client offers (a comparison pins one, so that every server does the
/// same work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExchange {
    /// rustls' default list (with this build's `prefer-post-quantum`: X25519MLKEM768 first,
    /// then X25519, P-256, P-384).
    Default,
    X25519,
    P256,
    X25519MlKem768,
}

impl KeyExchange {
    pub fn parse(s: &str) -> Option<KeyExchange> {
        match s {
            "default" => Some(KeyExchange::Default),
            "x25519" => Some(KeyExchange::X25519),
            "p256" => Some(KeyExchange::P256),
            "x25519mlkem768" => Some(KeyExchange::X25519MlKem768),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyExchange::Default => "default",
            KeyExchange::X25519 => "x25519",
            KeyExchange::P256 => "p256",
            KeyExchange::X25519MlKem768 => "x25519mlkem768",
        }
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Against the CA certificates of this PEM file (webpki: chain, validity, server name,
    /// and the handshake's signature).
    Ca(PathBuf),
    /// Not at all (`--tls-insecure`): any certificate, any server name, and the handshake's
    /// signature is not checked either. For benchmarks only, where the client's core must not
    /// spend on verification what the comparison measures on the server's; the server's work
    /// (it still signs) is unchanged.
    Insecure,
}

/// A run's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `None`: TLS 1.2 and 1.3 offered (1.3 preferred).
    pub version: Option<TlsVersion>,
    /// SNI and the name the certificate must cover; `None`: the target's host (an IP address
    /// sends no SNI).
    pub server_name: Option<String>,
    pub verify: Verify,
    /// Keep a session cache, so new connections resume (tickets, or TLS 1.2 session IDs);
    /// without it every connection makes a full handshake.
    pub resume: bool,
    pub kx: KeyExchange,
}

impl TlsOptions {
    /// TLS with `verify`, both versions, no resumption, rustls' default key exchange.
    pub fn new(verify: Verify) -> TlsOptions {
        TlsOptions {
            version: None,
            server_name: None,
            verify,
            resume: false,
            kx: KeyExchange::Default,
        }
    }
}

/// Why the TLS settings cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read --tls-ca {path:?}")]
    CaFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("--tls-ca {0:?} holds no certificate")]
    NoCa(PathBuf),
    #[error("--tls-ca {path:?}: a certificate rustls cannot use as a trust anchor")]
    Anchor {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{0:?} is not a server name (a DNS name or an IP address)")]
    ServerName(String),
    #[error("the TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

/// The settings every connection of a run shares: the config (with its session cache, shared
/// by the thread's connections so one's tickets serve the next) and the server name.
#[derive(Debug, Clone)]
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// Builds the client for `options`; `host` is the target's `Host` value (`NAME[:PORT]`,
    /// `[IPv6]:PORT`), the server name when none is given.
    pub fn new(options: &TlsOptions, host: &str) -> Result<TlsClient, TlsError> {
        let mut provider = aws_lc_rs::default_provider();
        match options.kx {
            KeyExchange::Default => {}
            KeyExchange::X25519 => provider.kx_groups = vec![aws_lc_rs::kx_group::X25519],
            KeyExchange::P256 => provider.kx_groups = vec![aws_lc_rs::kx_group::SECP256R1],
            KeyExchange::X25519MlKem768 => {
                provider.kx_groups = vec![aws_lc_rs::kx_group::X25519MLKEM768]
            }
        }
        let algorithms = provider.signature_verification_algorithms;
        let versions: &[&rustls::SupportedProtocolVersion] = match options.version {
            None => rustls::DEFAULT_VERSIONS,
            Some(TlsVersion::V12) => &[&rustls::version::TLS12],
            Some(TlsVersion::V13) => &[&rustls::version::TLS13],
        };
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)?;
        let mut config = match &options.verify {
            Verify::Ca(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in
                    CertificateDer::pem_file_iter(path).map_err(|source| TlsError::CaFile {
                        path: path.clone(),
                        source,
                    })?
                {
                    let cert = cert.map_err(|source| TlsError::CaFile {
                        path: path.clone(),
                        source,
                    })?;
                    roots.add(cert).map_err(|source| TlsError::Anchor {
                        path: path.clone(),
                        source,
                    })?;
                }
                if roots.is_empty() {
                    return Err(TlsError::NoCa(path.clone()));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Verify::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(algorithms)))
                .with_no_client_auth(),
        };
        config.resumption = if options.resume {
            Resumption::store(Arc::new(SessionStore::default()))
        } else {
            Resumption::disabled()
        };
        let name = server_name(options.server_name.as_deref().unwrap_or(host))?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }

    /// A new connection's TLS state (its ClientHello is ready to write).
    pub fn connect(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone())
    }
}

/// `NAME`, `NAME:PORT`, `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT` as a server name.
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// The run's sessions for resumption: the server's key-exchange hint, TLS 1.2 session, and
/// up to [`TICKETS`] TLS 1.3 tickets (single-use, newest first, as rustls' cache does).
/// Sessions of a server name other than the last one's are dropped: a run has one.
#[derive(Debug, Default)]
struct SessionStore(Mutex<Option<Sessions>>);

#[derive(Debug)]
struct Sessions {
    name: ServerName<'static>,
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl SessionStore {
    /// `f` on the sessions of `name`, made (and another server's dropped) if need be.
    fn with<R>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Sessions) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|s| s.name != *name) {
            *guard = Some(Sessions {
                name: name.to_owned(),
                kx_hint: None,
                tls12: None,
                tls13: VecDeque::new(),
            });
        }
        f(guard.as_mut().expect("just made"))
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.with(&name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(&name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(name, |s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.with(name, |s| s.tls12 = None);
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(&name, |s| {
            if s.tls13.len() == TICKETS {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.with(name, |s| s.tls13.pop_back())
    }
}

/// `--tls-insecure`'s verifier: accepts every certificate and every handshake signature
/// ([`Verify::Insecure`]); offers the provider's signature schemes so the server picks its
/// usual one.
#[derive(Debug)]
struct AcceptAnyServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What a handshake negotiated, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Negotiated {
    pub version: &'static str,
    pub cipher_suite: &'static str,
    pub kx_group: &'static str,
}

impl Negotiated {
    /// The parameters of `conn`'s finished handshake ("?" for what rustls cannot name).
    pub(crate) fn of(conn: &ClientConnection) -> Negotiated {
        Negotiated {
            version: conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("?"),
            kx_group: conn
                .negotiated_key_exchange_group()
                .and_then(|g| g.name().as_str())
                .unwrap_or("?"),
        }
    }
}

/// Whether `conn`'s finished handshake resumed a session.
pub(crate) fn resumed(conn: &ClientConnection) -> bool {
    conn.handshake_kind() == Some(HandshakeKind::Resumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_host_or_the_option() {
        assert_eq!(
            server_name("gw.test:8443").unwrap(),
            ServerName::try_from("gw.test").unwrap()
        );
        assert_eq!(
            server_name("gw.test").unwrap(),
            ServerName::try_from("gw.test").unwrap()
        );
        assert!(matches!(
            server_name("10.0.0.1:443").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[fd00::1]:443").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("fd00::1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("loadgen-tls-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = TlsClient::new(&TlsOptions::new(Verify::Ca(empty.clone())), "h").unwrap_err();
        assert!(matches!(e, TlsError::NoCa(_)), "{e}");
        let missing = dir.join("missing.pem");
        let e = TlsClient::new(&TlsOptions::new(Verify::Ca(missing)), "h").unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_round_trip() {
        for v in [TlsVersion::V12, TlsVersion::V13] {
            assert_eq!(TlsVersion::parse(v.name()), Some(v));
        }
        for k in [
            KeyExchange::Default,
            KeyExchange::X25519,
            KeyExchange::P256,
            KeyExchange::X25519MlKem768,
        ] {
            assert_eq!(KeyExchange::parse(k.name()), Some(k));
        }
        assert_eq!(TlsVersion::parse("1.1"), None);
        assert_eq!(KeyExchange::parse("ffdhe"), None);
    }
}
