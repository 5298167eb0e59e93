//! `TlsConn` against rustls' own client, in memory: the handshake in both versions, HTTP
//! through it byte-exact in small and large pieces, resumption, SNI and its refusal, ALPN,
//! plain HTTP, bad records, the handshake timeout, backpressure, and the settings' checks.

use std::io::{Read, Write};
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;
use crate::app::{App, AppConfig};
use crate::http::{HttpConn, HttpLimits};
use crate::time::{Duration, Instant};

/// A self-signed certificate for `names`, as PEM (chain, key), with an ECDSA P-256 key or an
/// RSA one.
fn cert_pem(names: &[&str], rsa: bool) -> (String, String) {
    let alg = if rsa {
        &rcgen::PKCS_RSA_SHA256
    } else {
        &rcgen::PKCS_ECDSA_P256_SHA256
    };
    let key = KeyPair::generate_for(alg).unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

struct Cert {
    chain: String,
    key: String,
    names: Vec<String>,
    default: bool,
}

impl Cert {
    fn new(names: &[&str]) -> Self {
        let (chain, key) = cert_pem(names, false);
        Cert {
            chain,
            key,
            names: names.iter().map(|s| s.to_string()).collect(),
            default: false,
        }
    }

    fn rsa(names: &[&str]) -> Self {
        let (chain, key) = cert_pem(names, true);
        Cert {
            chain,
            key,
            names: names.iter().map(|s| s.to_string()).collect(),
            default: false,
        }
    }

    fn pem(&self) -> CertificatePem<'_> {
        CertificatePem {
            cert_label: "test.crt",
            cert_chain: self.chain.as_bytes(),
            key_label: "test.key",
            key: self.key.as_bytes(),
            server_names: &self.names,
            default: self.default,
        }
    }
}

fn settings(certs: &[Cert], options: TlsOptions, shared: &TlsShared) -> Arc<TlsSettings> {
    let pems: Vec<_> = certs.iter().map(Cert::pem).collect();
    Arc::new(TlsSettings::build(&pems, options, shared).unwrap())
}

fn client_config(
    certs: &[Cert],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for c in certs {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(c.chain.as_bytes()).unwrap();
        roots.add(der).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

use rustls_pki_types::pem::PemObject;

/// A TLS connection between a rustls client and the server side under test, moved by hand.
struct Pair {
    client: ClientConnection,
    server: TlsConn,
    http: HttpConn,
    app: App,
    thread: TlsThread,
    now: Instant,
    /// Ciphertext on its way to the server, not yet consumed.
    to_server: Vec<u8>,
    /// Room the server gets per `process` call (the transport's send room).
    out_room: usize,
    /// The server's side is to close (after what it wrote).
    server_closed: bool,
}

impl Pair {
    fn new(settings: Arc<TlsSettings>, client: Arc<ClientConfig>, name: &str) -> Self {
        let now = Instant::from_secs(100);
        let mut app = App::new(&AppConfig::default()).unwrap();
        app.set_date(784_111_777);
        let limits = HttpLimits::default();
        let mut server = TlsConn::default();
        server.open(
            settings,
            now,
            TlsConn::plain_capacity(limits.max_header_bytes),
        );
        let mut http = HttpConn::new(limits);
        http.start(now);
        let mut client =
            ClientConnection::new(client, ServerName::try_from(name.to_string()).unwrap()).unwrap();
        // Large requests are queued whole before the pump moves them.
        client.set_buffer_limit(None);
        Pair {
            client,
            server,
            http,
            app,
            thread: TlsThread::new(0),
            now,
            to_server: Vec::new(),
            out_room: 64 * 1024,
            server_closed: false,
        }
    }

    /// Bytes from the server for the client (what one `process` call wrote).
    fn server_step(&mut self) -> Vec<u8> {
        let mut out = vec![0u8; self.out_room];
        let app = &self.app;
        let now = self.now;
        let p = self.server.process(
            now,
            &mut self.thread,
            &self.to_server,
            &mut out,
            &mut self.http,
            |http, i, o| http.process(now, app, i, o),
        );
        self.to_server.drain(..p.consumed);
        out.truncate(p.produced);
        if self.server.wants_close(self.http.wants_close()) {
            self.server_closed = true;
        }
        out
    }

    /// Moves bytes both ways until neither side has anything more; returns the plaintext the
    /// client read, and whether the client saw an error.
    fn pump(&mut self) -> (Vec<u8>, Option<rustls::Error>) {
        let mut plain = Vec::new();
        for _ in 0..200_000 {
            let mut moved = false;
            while self.client.wants_write() {
                let mut buf = Vec::new();
                self.client.write_tls(&mut buf).unwrap();
                moved |= !buf.is_empty();
                self.to_server.extend_from_slice(&buf);
            }
            let from_server = self.server_step();
            if !from_server.is_empty() {
                moved = true;
                let mut rd = &from_server[..];
                while !rd.is_empty() {
                    if self.client.read_tls(&mut rd).unwrap() == 0 {
                        break;
                    }
                    if let Err(e) = self.client.process_new_packets() {
                        return (plain, Some(e));
                    }
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match self.client.reader().read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => plain.extend_from_slice(&buf[..n]),
                        }
                    }
                }
            }
            if !moved || self.server_closed {
                break;
            }
        }
        (plain, None)
    }

    fn request(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.client.writer().write_all(bytes).unwrap();
        let (plain, err) = self.pump();
        assert!(err.is_none(), "{err:?}");
        plain
    }
}

fn ecdsa_site() -> Vec<Cert> {
    let mut c = Cert::new(&["example.test", "*.example.test"]);
    c.default = true;
    vec![c]
}

/// `ecdsa_site`'s certificates and default settings, on state of their own.
fn ecdsa_site_settings() -> (Vec<Cert>, Arc<TlsSettings>) {
    let certs = ecdsa_site();
    let s = settings(&certs, TlsOptions::default(), &TlsShared::new(64).unwrap());
    (certs, s)
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn body_of(response: &[u8]) -> &[u8] {
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &response[at + 4..]
}

#[test]
fn get_over_tls13_and_tls12_with_alpn_and_counts() {
    let (certs, s) = ecdsa_site_settings();
    for (versions, index) in [(TLS13, 1), (TLS12, 0)] {
        let mut pair = Pair::new(
            s.clone(),
            Arc::new(client_config(&certs, versions)),
            "example.test",
        );
        let got = pair.request(b"GET /health HTTP/1.1\r\nHost: example.test\r\n\r\n");
        assert!(
            got.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert!(pair.server.is_established());
        assert_eq!(pair.client.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(pair.thread.stats.handshakes_full, 1);
        assert_eq!(pair.thread.stats.versions[index], 1);
        assert_eq!(pair.thread.stats.suites.iter().sum::<u64>(), 1);
        assert_eq!(pair.thread.stats.suites[SUITES.len()], 0, "a known suite");
    }
}

#[test]
fn large_bodies_both_ways_are_byte_exact_through_small_rooms() {
    let (certs, s) = ecdsa_site_settings();
    // The room a transport offers (at least a record's overhead and a byte, or nothing moves).
    for room in [64usize, 1000, 16_425, 70_000] {
        let mut pair = Pair::new(
            s.clone(),
            Arc::new(client_config(&certs, TLS13)),
            "example.test",
        );
        pair.out_room = room;
        let n = 300_000;
        let got = pair.request(format!("GET /bytes/{n} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let body = body_of(&got);
        assert_eq!(body.len(), n, "room {room}");
        assert!(body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == b'a' + (i % 26) as u8));
        // An upload echoed back.
        let upload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut req = format!(
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .into_bytes();
        req.extend_from_slice(&upload);
        let got = pair.request(&req);
        assert_eq!(body_of(&got), &upload[..], "room {room}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (certs, s) = ecdsa_site_settings();
    let mut pair = Pair::new(s, Arc::new(client_config(&certs, TLS13)), "example.test");
    let got = pair.request(
        b"GET /bytes/3 HTTP/1.1\r\nHost: a\r\n\r\nGET /bytes/5 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.find("\r\n\r\nabc").unwrap() < text.find("\r\n\r\nabcde").unwrap());
}

#[test]
fn connection_close_sends_close_notify_then_wants_close() {
    let (certs, s) = ecdsa_site_settings();
    let mut pair = Pair::new(s, Arc::new(client_config(&certs, TLS13)), "example.test");
    let got = pair.request(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    assert!(pair.server_closed, "the server closes after its answer");
    // The client saw close_notify: a clean end, not a truncation.
    let mut buf = [0u8; 16];
    assert_eq!(pair.client.reader().read(&mut buf).unwrap(), 0);
}

#[test]
fn a_second_connection_resumes_with_a_ticket_in_both_versions() {
    let shared = TlsShared::new(64).unwrap();
    let certs = ecdsa_site();
    // Two settings built from the same shared state (as two threads, or a reload): a ticket
    // from one is good on the other.
    let first = settings(&certs, TlsOptions::default(), &shared);
    let second = settings(&certs, TlsOptions::default(), &shared);
    for versions in [TLS13, TLS12] {
        let mut config = client_config(&certs, versions);
        config.resumption = Resumption::in_memory_sessions(16);
        let config = Arc::new(config);
        let mut a = Pair::new(first.clone(), config.clone(), "example.test");
        a.request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut b = Pair::new(second.clone(), config, "example.test");
        let got = b.request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(got.starts_with(b"HTTP/1.1 200 OK"));
        assert_eq!(b.thread.stats.handshakes_resumed, 1, "{versions:?}");
        assert_eq!(b.thread.stats.handshakes_full, 0);
    }
}

#[test]
fn sni_picks_the_certificate_and_unknown_names_get_the_default_or_a_refusal() {
    let shared = TlsShared::new(64).unwrap();
    let mut site = Cert::new(&["site.test"]);
    site.default = true;
    let other = Cert::new(&["other.test", "*.wild.test"]);
    let certs = vec![site, other];
    let config = Arc::new(client_config(&certs, TLS13));
    let s = settings(&certs, TlsOptions::default(), &shared);
    // By name, exact and wildcard: the client verifies the name against what it got.
    for name in ["site.test", "other.test", "a.wild.test"] {
        let mut pair = Pair::new(s.clone(), config.clone(), name);
        assert!(pair
            .request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
            .starts_with(b"HTTP/1.1 200"));
        assert_eq!(pair.thread.stats.default_certificate, 0, "{name}");
    }
    // Unknown: the default certificate, which does not cover the name, so the client refuses
    // it (as a browser would); the server counted the default.
    let mut pair = Pair::new(s.clone(), config.clone(), "unknown.test");
    pair.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let (_, err) = pair.pump();
    assert!(
        matches!(err, Some(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );
    assert_eq!(pair.thread.stats.default_certificate, 1);
    // Configured to refuse: unrecognized_name, and a close.
    let options = TlsOptions {
        unknown_server_name: UnknownServerName::Reject,
        ..TlsOptions::default()
    };
    let strict = settings(&certs, options, &shared);
    let mut pair = Pair::new(strict, config, "unknown.test");
    pair.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let (_, err) = pair.pump();
    assert_eq!(
        err,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::UnrecognisedName
        ))
    );
    assert!(pair.server_closed);
    assert_eq!(
        pair.thread.stats.failures_of(TlsFailure::UnrecognizedName),
        1
    );
}

/// A TLS 1.2-only client of a port set to TLS 1.3 only.
fn tls12_client_of_a_tls13_only_port() -> Pair {
    let shared = TlsShared::new(64).unwrap();
    let certs = ecdsa_site();
    let options = TlsOptions {
        min_version: MinVersion::Tls13,
        ..TlsOptions::default()
    };
    let s = settings(&certs, options, &shared);
    Pair::new(s, Arc::new(client_config(&certs, TLS12)), "example.test")
}

#[test]
fn tls13_only_refuses_a_tls12_client() {
    let mut pair = tls12_client_of_a_tls13_only_port();
    pair.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let (_, err) = pair.pump();
    assert!(
        matches!(err, Some(rustls::Error::AlertReceived(_))),
        "{err:?}"
    );
    assert!(pair.server_closed);
    assert_eq!(pair.thread.stats.failures_of(TlsFailure::Incompatible), 1);
    assert_eq!(pair.thread.stats.handshakes(), 0);
}

#[test]
fn alpn_without_http11_is_refused() {
    let (certs, s) = ecdsa_site_settings();
    let mut config = client_config(&certs, TLS13);
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut pair = Pair::new(s, Arc::new(config), "example.test");
    pair.client.writer().write_all(b"x").unwrap();
    let (_, err) = pair.pump();
    assert_eq!(
        err,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::NoApplicationProtocol
        ))
    );
    assert_eq!(
        pair.thread
            .stats
            .failures_of(TlsFailure::NoApplicationProtocol),
        1
    );
}

/// The server side alone, fed raw bytes.
fn raw_server(input: &[u8]) -> (Vec<u8>, bool, TlsStats) {
    let (_, s) = ecdsa_site_settings();
    let now = Instant::from_secs(1);
    let app = App::new(&AppConfig::default()).unwrap();
    let mut http = HttpConn::new(HttpLimits::default());
    let mut tls = TlsConn::default();
    tls.open(s, now, TlsConn::plain_capacity(16 * 1024));
    let mut thread = TlsThread::new(0);
    let mut out = vec![0u8; 4096];
    let p = tls.process(now, &mut thread, input, &mut out, &mut http, |h, i, o| {
        h.process(now, &app, i, o)
    });
    assert_eq!(
        p.consumed,
        input.len(),
        "everything is consumed (or dropped)"
    );
    out.truncate(p.produced);
    (out, tls.wants_close(http.wants_close()), thread.stats)
}

#[test]
fn plain_http_on_a_tls_port_gets_nginx_s_400_and_a_close() {
    let (out, close, stats) = raw_server(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.ends_with("The plain HTTP request was sent to an HTTPS port"));
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, body_of(&out).len());
    assert!(close);
    assert_eq!(stats.failures_of(TlsFailure::PlainHttp), 1);
}

#[test]
fn garbage_gets_an_alert_and_a_close_never_a_panic() {
    // A handshake record whose body is not a ClientHello.
    let (out, close, stats) = raw_server(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0x00, 0x00, 0x00]);
    assert_eq!(out.first(), Some(&0x15), "an alert record: {out:?}");
    assert!(close);
    assert_eq!(stats.failures.iter().sum::<u64>(), 1);
    // Other content types and lengths.
    for input in [
        &[0x17, 0x03, 0x03, 0x00, 0x01, 0x00][..],
        &[0x16, 0x03, 0x03, 0xff, 0xff][..],
        &[0x00; 64][..],
        &[0x80, 0x2e, 0x01, 0x00, 0x02][..],
    ] {
        let (out, close, _) = raw_server(input);
        assert!(close || out.is_empty(), "{input:?}");
    }
}

#[test]
fn a_corrupted_record_after_the_handshake_gets_bad_record_mac() {
    let (certs, s) = ecdsa_site_settings();
    let mut pair = Pair::new(s, Arc::new(client_config(&certs, TLS13)), "example.test");
    pair.request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    pair.client
        .writer()
        .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut record = Vec::new();
    pair.client.write_tls(&mut record).unwrap();
    let last = record.len() - 1;
    record[last] ^= 1;
    pair.to_server.extend_from_slice(&record);
    let alert = pair.server_step();
    assert!(!alert.is_empty(), "an encrypted alert");
    assert!(pair.server_closed);
    assert_eq!(pair.thread.stats.failures_of(TlsFailure::BadRecordMac), 1);
}

#[test]
fn a_stalled_handshake_times_out_and_an_abandoned_one_is_counted() {
    let shared = TlsShared::new(64).unwrap();
    let certs = ecdsa_site();
    let options = TlsOptions {
        handshake_timeout: Duration::from_secs(3),
        ..TlsOptions::default()
    };
    let s = settings(&certs, options, &shared);
    let mut thread = TlsThread::new(0);
    let mut tls = TlsConn::default();
    let t0 = Instant::from_secs(10);
    tls.open(s.clone(), t0, 1 << 15);
    assert_eq!(tls.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    assert!(!tls.handle_timeout(t0 + Duration::from_secs(2), &mut thread));
    assert!(!tls.wants_close(false));
    assert!(tls.handle_timeout(t0 + Duration::from_secs(3), &mut thread));
    assert!(tls.wants_close(false));
    tls.finish(&mut thread);
    assert_eq!(thread.stats.failures_of(TlsFailure::Timeout), 1);
    assert_eq!(
        thread.stats.failures_of(TlsFailure::Abandoned),
        0,
        "counted once"
    );
    // Reused for a connection that goes away mid-handshake.
    tls.open(s, t0, 1 << 15);
    tls.finish(&mut thread);
    assert_eq!(thread.stats.failures_of(TlsFailure::Abandoned), 1);
    assert!(!tls.is_open());
}

#[test]
fn a_client_that_does_not_read_stops_being_read() {
    let (certs, s) = ecdsa_site_settings();
    let mut pair = Pair::new(s, Arc::new(client_config(&certs, TLS13)), "example.test");
    pair.request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    // Many pipelined requests for large answers, and no output room at all.
    let req = b"GET /bytes/100000 HTTP/1.1\r\nHost: a\r\n\r\n";
    for _ in 0..2000 {
        pair.client.writer().write_all(req).unwrap();
    }
    let mut wire = Vec::new();
    while pair.client.wants_write() {
        pair.client.write_tls(&mut wire).unwrap();
    }
    pair.to_server = wire;
    pair.out_room = 0;
    let total = pair.to_server.len();
    pair.server_step();
    let taken = total - pair.to_server.len();
    // What was taken is bounded by the decrypted-input buffer and rustls' own bound, not by
    // what was sent.
    let bound = TlsConn::plain_capacity(16 * 1024) + 16 * 1024 + 2 * (16 * 1024 + 256);
    assert!(taken <= bound, "took {taken} of {total}");
    assert!(total > bound);
}

#[test]
fn settings_refuse_what_an_operator_must_fix() {
    let shared = TlsShared::new(0).unwrap();
    let build =
        |pems: &[CertificatePem<'_>]| TlsSettings::build(pems, TlsOptions::default(), &shared);
    assert!(matches!(build(&[]), Err(TlsConfigError::NoCertificates)));
    let a = Cert::new(&["a.test"]);
    let b = Cert::new(&["b.test"]);
    // A key that is not the certificate's.
    let mut wrong = a.pem();
    wrong.key = b.key.as_bytes();
    let err = build(&[wrong]).unwrap_err();
    assert!(matches!(err, TlsConfigError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("test.key") && err.to_string().contains("test.crt"));
    // A name the certificate does not cover.
    let names = vec!["b.test".to_string()];
    let mut uncovered = a.pem();
    uncovered.server_names = &names;
    let err = build(&[uncovered]).unwrap_err();
    assert!(
        matches!(err, TlsConfigError::NameNotCovered { .. }),
        "{err}"
    );
    // Not PEM at all, or no key in it.
    let mut garbage = a.pem();
    garbage.cert_chain = b"not a certificate";
    assert!(matches!(
        build(&[garbage]),
        Err(TlsConfigError::NoCertificate { .. })
    ));
    let mut keyless = a.pem();
    keyless.key = a.chain.as_bytes();
    assert!(matches!(build(&[keyless]), Err(TlsConfigError::Pem { .. })));
    // Not a DNS name; a name twice with the same kind of key; two defaults.
    let bad = vec!["*.*.test".to_string()];
    let mut bad_name = a.pem();
    bad_name.server_names = &bad;
    assert!(matches!(
        build(&[bad_name]),
        Err(TlsConfigError::BadName { .. })
    ));
    assert!(matches!(
        build(&[a.pem(), a.pem()]),
        Err(TlsConfigError::DuplicateName { .. })
    ));
    let (mut d1, mut d2) = (a.pem(), b.pem());
    d1.default = true;
    d2.default = true;
    assert!(matches!(
        build(&[d1, d2]),
        Err(TlsConfigError::TwoDefaults { .. })
    ));
    assert!(build(&[a.pem(), b.pem()]).is_ok());
}

#[test]
fn a_name_with_ecdsa_and_rsa_certificates_gives_each_client_one_it_can_use() {
    let shared = TlsShared::new(64).unwrap();
    let certs = vec![Cert::new(&["both.test"]), Cert::rsa(&["both.test"])];
    let s = settings(&certs, TlsOptions::default(), &shared);
    let der = |c: &Cert| {
        rustls_pki_types::CertificateDer::from_pem_slice(c.chain.as_bytes())
            .unwrap()
            .to_vec()
    };
    // A modern client: ECDSA.
    let mut pair = Pair::new(
        s.clone(),
        Arc::new(client_config(&certs, TLS13)),
        "both.test",
    );
    pair.request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        pair.client.peer_certificates().unwrap()[0].to_vec(),
        der(&certs[0])
    );
    // A TLS 1.2 client with RSA suites only: RSA.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
    let mut roots = RootCertStore::empty();
    for c in &certs {
        roots.add(der(c).into()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(TLS12)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut pair = Pair::new(s, Arc::new(config), "both.test");
    let got = pair.request(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(
        pair.client.peer_certificates().unwrap()[0].to_vec(),
        der(&certs[1])
    );
    assert_eq!(
        pair.thread.stats.suites[6], 1,
        "{:?}",
        pair.thread.stats.suites
    );
}

#[test]
fn a_spent_handshake_budget_leaves_the_client_hello_unread_until_the_next_round() {
    let shared = TlsShared::new(64).unwrap();
    let certs = ecdsa_site();
    let s = settings(&certs, TlsOptions::default(), &shared);
    let config = Arc::new(client_config(&certs, TLS13));
    let mut a = Pair::new(s.clone(), config.clone(), "example.test");
    let mut b = Pair::new(s, config, "example.test");
    // One handshake per round, shared by both connections (as one thread's are).
    a.thread = TlsThread::new(1);
    a.client
        .writer()
        .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    a.pump();
    assert!(a.server.is_established());
    b.thread = a.thread;
    b.client
        .writer()
        .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut hello = Vec::new();
    b.client.write_tls(&mut hello).unwrap();
    b.to_server = hello.clone();
    assert!(b.server_step().is_empty(), "no ServerHello this round");
    assert!(b.server.is_deferred());
    assert!(
        b.to_server.is_empty(),
        "the ClientHello is read, and waits parsed"
    );
    // Another call in the same round: still waiting, counted once.
    assert!(b.server_step().is_empty());
    assert!(b.server.is_deferred());
    assert_eq!(b.thread.stats.handshakes_deferred, 1);
    // Next round: served.
    b.thread.begin_round();
    let got = b.pump().0;
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(!b.server.is_deferred());
}

#[test]
fn an_alert_that_fills_the_room_exactly_is_not_followed_by_another() {
    let mut pair = tls12_client_of_a_tls13_only_port();
    let mut hello = Vec::new();
    pair.client.write_tls(&mut hello).unwrap();
    pair.to_server = hello;
    // A plaintext alert record is 7 bytes: exactly the room.
    pair.out_room = 7;
    let alert = pair.server_step();
    assert_eq!(alert.len(), 7);
    assert_eq!(alert[0], 0x15);
    pair.out_room = 4096;
    assert!(pair.server_step().is_empty(), "one alert, not two");
    assert!(pair.server_closed);
}
