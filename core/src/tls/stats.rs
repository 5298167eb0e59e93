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

/// Handshakes a serving thread starts per round of its loop when TLS connections wait (the
/// default of `[tls] handshakes_per_round`): about 2 ms of full ECDSA P-256 handshakes, so a
/// flood of ClientHellos delays a round's established connections by that much at most.
pub const DEFAULT_HANDSHAKES_PER_ROUND: u32 = 16;

/// What a serving thread keeps for all its TLS connections: the counters, and how many
/// handshakes may still start in the current round of its loop (a ClientHello beyond that
/// waits, unread, for the next round: `TlsStats::handshakes_deferred`).
#[derive(Debug, Clone, Copy)]
pub struct TlsThread {
    pub stats: TlsStats,
    per_round: u32,
    left: u32,
}

impl Default for TlsThread {
    fn default() -> Self {
        TlsThread::new(DEFAULT_HANDSHAKES_PER_ROUND)
    }
}

impl TlsThread {
    /// `per_round`: handshakes started per round; 0: no bound.
    pub fn new(per_round: u32) -> Self {
        TlsThread {
            stats: TlsStats::default(),
            per_round,
            left: per_round,
        }
    }

    /// A new round of the thread's loop: the budget is whole again.
    pub fn begin_round(&mut self) {
        self.left = self.per_round;
    }

    /// Whether the round's budget has a handshake left.
    pub fn has_budget(&self) -> bool {
        self.per_round == 0 || self.left > 0
    }

    /// Takes one handshake from the round's budget; false when it is spent (the connection
    /// counts its deferral, once).
    pub(crate) fn take_handshake(&mut self) -> bool {
        if self.per_round == 0 {
            return true;
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
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
    fn the_budget_is_spent_counted_and_refilled() {
        let mut t = TlsThread::new(2);
        assert!(t.take_handshake() && t.take_handshake());
        assert!(!t.take_handshake());
        assert!(!t.take_handshake());
        t.begin_round();
        assert!(t.take_handshake());
        let mut unbounded = TlsThread::new(0);
        assert!((0..1000).all(|_| unbounded.take_handshake()));
    }

    #[test]
    fn every_suite_has_a_name() {
        for i in 0..SUITES.len() {
            assert!(suite_name(i).starts_with("TLS"), "{i}");
        }
        assert_eq!(suite_name(SUITES.len()), "other");
    }
}
