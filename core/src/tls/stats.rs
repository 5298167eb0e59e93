//! What TLS did on one serving thread: handshakes full and resumed, versions and cipher suites
//! negotiated, and why handshakes failed. Plain counters, summed across threads by the owner.

use rustls::CipherSuite;
use serde::{Deserialize, Serialize};

/// Why a TLS connection ended before or instead of carrying HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The handshake did not finish within the port's handshake timeout.
    Timeout,
    /// The connection closed (or was reset) during the handshake.
    Abandoned,
    /// Plain HTTP on a TLS port: answered 400, as nginx does.
    PlainHttp,
    /// A server name with no certificate, refused with `unrecognized_name`.
    UnrecognizedName,
    /// The client sent a fatal alert.
    PeerAlert,
    /// Records or messages that do not parse (`decode_error`, `record_overflow`).
    DecodeError,
    /// A message out of order (`unexpected_message`).
    UnexpectedMessage,
    /// Nothing in common: versions, suites, groups or signature schemes
    /// (`handshake_failure`, `protocol_version`, `insufficient_security`).
    Incompatible,
    /// ALPN offered without `http/1.1` (`no_application_protocol`).
    NoApplicationProtocol,
    /// The client broke the protocol otherwise (`illegal_parameter` and the like).
    Misbehaved,
    /// A record failed authentication (`bad_record_mac`).
    BadRecordMac,
    /// Anything else.
    Other,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 12] = [
        TlsFailure::Timeout,
        TlsFailure::Abandoned,
        TlsFailure::PlainHttp,
        TlsFailure::UnrecognizedName,
        TlsFailure::PeerAlert,
        TlsFailure::DecodeError,
        TlsFailure::UnexpectedMessage,
        TlsFailure::Incompatible,
        TlsFailure::NoApplicationProtocol,
        TlsFailure::Misbehaved,
        TlsFailure::BadRecordMac,
        TlsFailure::Other,
    ];

    /// The label in metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Timeout => "timeout",
            TlsFailure::Abandoned => "abandoned",
            TlsFailure::PlainHttp => "plain_http",
            TlsFailure::UnrecognizedName => "unrecognized_name",
            TlsFailure::PeerAlert => "peer_alert",
            TlsFailure::DecodeError => "decode_error",
            TlsFailure::UnexpectedMessage => "unexpected_message",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::NoApplicationProtocol => "no_application_protocol",
            TlsFailure::Misbehaved => "misbehaved",
            TlsFailure::BadRecordMac => "bad_record_mac",
            TlsFailure::Other => "other",
        }
    }

    /// The kind of a rustls error (the alert rustls sent for it, roughly).
    pub fn of(err: &rustls::Error) -> Self {
        use rustls::Error as E;
        match err {
            E::InvalidMessage(_) => TlsFailure::DecodeError,
            E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
                TlsFailure::UnexpectedMessage
            }
            E::PeerIncompatible(_) => TlsFailure::Incompatible,
            E::NoApplicationProtocol => TlsFailure::NoApplicationProtocol,
            E::PeerMisbehaved(_) => TlsFailure::Misbehaved,
            E::DecryptError => TlsFailure::BadRecordMac,
            E::AlertReceived(_) => TlsFailure::PeerAlert,
            E::PeerSentOversizedRecord => TlsFailure::DecodeError,
            _ => TlsFailure::Other,
        }
    }
}

/// The cipher suites counted one by one (what the ring provider offers); anything else is
/// counted as "other".
pub const SUITES: [CipherSuite; 9] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The name of `SUITES[i]` (IANA's), for labels.
pub fn suite_name(i: usize) -> &'static str {
    SUITES.get(i).and_then(|s| s.as_str()).unwrap_or("other")
}

/// Counters of one thread's TLS connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsStats {
    /// Handshakes completed with a full key exchange and certificate.
    pub handshakes_full: u64,
    /// Handshakes that resumed a session (ticket or cache).
    pub handshakes_resumed: u64,
    /// Completed handshakes by version: `[TLS 1.2, TLS 1.3]`.
    pub versions: [u64; 2],
    /// Completed handshakes by cipher suite, as `SUITES`; the last entry: any other.
    pub suites: [u64; SUITES.len() + 1],
    /// Connections that failed, by `TlsFailure::ALL`'s order.
    pub failures: [u64; TlsFailure::ALL.len()],
    /// ClientHellos whose server name had no certificate and got the default one.
    pub default_certificate: u64,
    /// Connections whose handshake waited a round because the round's handshake budget was
    /// spent (see `HandshakeBudget`).
    pub handshakes_deferred: u64,
}

impl TlsStats {
    pub fn add(&mut self, other: &TlsStats) {
        self.handshakes_full += other.handshakes_full;
        self.handshakes_resumed += other.handshakes_resumed;
        for (a, b) in self.versions.iter_mut().zip(other.versions) {
            *a += b;
        }
        for (a, b) in self.suites.iter_mut().zip(other.suites) {
            *a += b;
        }
        for (a, b) in self.failures.iter_mut().zip(other.failures) {
            *a += b;
        }
        self.default_certificate += other.default_certificate;
        self.handshakes_deferred += other.handshakes_deferred;
    }

    pub fn failed(&mut self, why: TlsFailure) {
        // `ALL` lists every variant in declaration order.
        self.failures[why as usize] += 1;
    }

    pub fn failures_of(&self, why: TlsFailure) -> u64 {
        self.failures[why as usize]
    }

    pub fn handshakes(&self) -> u64 {
        self.handshakes_full + self.handshakes_resumed
    }

    pub(crate) fn count_suite(&mut self, suite: CipherSuite) {
        let i = SUITES
            .iter()
            .position(|s| *s == suite)
            .unwrap_or(SUITES.len());
        self.suites[i] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_index_is_its_position_in_all() {
        for (i, f) in TlsFailure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{}", f.as_str());
        }
    }

    #[test]
    fn every_suite_has_a_name() {
        for i in 0..SUITES.len() {
            assert!(suite_name(i).starts_with("TLS"), "{i}");
        }
        assert_eq!(suite_name(SUITES.len()), "other");
    }
}
