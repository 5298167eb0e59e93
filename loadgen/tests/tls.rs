//! HTTPS against an in-process rustls server (no root needed): keep-alive and pipelined
//! requests over TLS 1.3 and 1.2 with every body checked, churn with and without session
//! resumption (counted by the server as well as by loadgen), and handshakes that must fail
//! (a name the certificate does not cover, a server that speaks no TLS) failing as `tls`.
//! The certificate is made at test time (rcgen).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadgen::response::pattern;
use loadgen::tls::{KeyExchange, TlsOptions, TlsVersion, Verify};
use loadgen::{BodyCheck, ErrorCounts, Scenario, Stop, Target};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

const NAME: &str = "loadgen.test";

#[derive(Default)]
struct Counters {
    accepts: AtomicU64,
    full: AtomicU64,
    resumed: AtomicU64,
    requests: AtomicU64,
}

struct TlsServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    /// The certificate, as a PEM file loadgen can trust.
    ca: PathBuf,
}

impl TlsServer {
    fn count(&self, c: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        c(&self.counters).load(Ordering::SeqCst)
    }

    /// A closed-loop HTTPS scenario of `requests` requests, checking the certificate.
    fn scenario(&self, path: &str, requests: u64) -> Scenario {
        let mut s = Scenario::new(Target::from_addr(self.addr, path).unwrap());
        s.connections = 2;
        s.stop = Stop::Requests(requests);
        s.timeout = Duration::from_secs(10);
        let mut tls = TlsOptions::new(Verify::Ca(self.ca.clone()));
        tls.server_name = Some(NAME.into());
        s.tls = Some(tls);
        s
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca);
    }
}

/// A thread-per-connection HTTPS server on 127.0.0.1 for `NAME` (ECDSA P-256, TLS 1.2 and
/// 1.3, stateless tickets and a session cache): `/bytes/{n}` gives the pattern, `/echo` the
/// body back, anything else `ok`; `Connection: close` is honoured with a close_notify.
fn start() -> TlsServer {
    let key = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    let ca = std::env::temp_dir().join(format!(
        "loadgen-tls-test-{}-{}.pem",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&ca, key.cert.pem()).unwrap();
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    config.ticketer = aws_lc_rs::Ticketer::new().unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            c.accepts.fetch_add(1, Ordering::SeqCst);
            let c = Arc::clone(&c);
            let config = Arc::clone(&config);
            std::thread::spawn(move || serve(stream, config, &c));
        }
    });
    TlsServer { addr, counters, ca }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn serve(sock: TcpStream, config: Arc<ServerConfig>, c: &Counters) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
    let conn = ServerConnection::new(config).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let mut counted = false;
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let n = match tls.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !counted {
            counted = true;
            match tls.conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => c.resumed.fetch_add(1, Ordering::SeqCst),
                _ => c.full.fetch_add(1, Ordering::SeqCst),
            };
        }
        buf.extend_from_slice(&tmp[..n]);
        let mut out = Vec::new();
        let mut close = false;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head_len = match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            let (body_len, asked_close) = common::framing(&req);
            close |= asked_close;
            if buf.len() < head_len + body_len {
                break;
            }
            c.requests.fetch_add(1, Ordering::SeqCst);
            let path = req.path.unwrap();
            let body = if let Some(n) = path.strip_prefix("/bytes/") {
                pattern(n.parse().unwrap())
            } else if path == "/echo" {
                buf[head_len..head_len + body_len].to_vec()
            } else {
                b"ok".to_vec()
            };
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                )
                .as_bytes(),
            );
            out.extend_from_slice(&body);
            buf.drain(..head_len + body_len);
            if close {
                break;
            }
        }
        if tls.write_all(&out).is_err() || tls.flush().is_err() {
            return;
        }
        if close {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.sock.shutdown(std::net::Shutdown::Write);
            while matches!(tls.sock.read(&mut tmp), Ok(n) if n > 0) {}
            return;
        }
    }
}

#[test]
fn keep_alive_requests_over_tls_1_3_are_exact_and_checked() {
    let server = start();
    let mut s = server.scenario("/bytes/20000", 600);
    s.pipeline = 4;
    s.threads = 2;
    s.expect.body = BodyCheck::Pattern;
    s.expect.body_len = Some(20_000);
    let r = loadgen::run(&s).unwrap();
    assert_eq!((r.requests, r.ok), (600, 600), "{}", r.summary());
    assert_eq!(r.errors, ErrorCounts::default());
    assert_eq!(server.count(|c| &c.requests), 600);
    assert_eq!(server.count(|c| &c.accepts), 2, "keep-alive: one per slot");
    let tls = r.tls.expect("an HTTPS report");
    let n = tls.negotiated.expect("a handshake");
    assert_eq!(n.version, "TLSv1_3", "{n:?}");
    // Both handshakes came before the clock: none is counted in the measurement.
    assert_eq!(tls.handshakes_full + tls.handshakes_resumed, 0);
    // 20 KB bodies take two records each: what went over the wire is more than the bodies.
    assert!(r.bytes_received > 600 * 20_000, "{}", r.bytes_received);
    assert!(r.summary().contains("TLSv1_3"), "{}", r.summary());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["scenario"]["tls"]["verify"], "ca");
    assert!(json["scenario"]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
}

#[test]
fn posts_over_tls_1_2_are_echoed_byte_for_byte() {
    let server = start();
    let mut s = server.scenario("/echo", 300);
    s.method = "POST".into();
    s.body_size = 1024;
    s.expect.body = BodyCheck::Pattern;
    s.expect.body_len = Some(1024);
    let tls = s.tls.as_mut().unwrap();
    tls.version = Some(TlsVersion::V12);
    tls.kx = KeyExchange::P256;
    let r = loadgen::run(&s).unwrap();
    assert_eq!((r.requests, r.ok), (300, 300), "{}", r.summary());
    let n = r.tls.unwrap().negotiated.unwrap();
    assert_eq!((n.version, n.kx_group), ("TLSv1_2", "secp256r1"), "{n:?}");
}

#[test]
fn churn_resumes_only_when_asked() {
    for resume in [false, true] {
        let server = start();
        let mut s = server.scenario("/health", 1000);
        s.churn = true;
        // More connections at once than rustls' own cache keeps tickets (8).
        s.connections = 32;
        s.tls.as_mut().unwrap().resume = resume;
        s.tls.as_mut().unwrap().kx = KeyExchange::X25519;
        let r = loadgen::run(&s).unwrap();
        assert_eq!((r.requests, r.ok), (1000, 1000), "{}", r.summary());
        assert_eq!(server.count(|c| &c.accepts), 1000);
        let tls = r.tls.unwrap();
        assert_eq!(
            tls.handshakes_full + tls.handshakes_resumed,
            1000,
            "{tls:?}"
        );
        assert_eq!(tls.negotiated.unwrap().kx_group, "X25519");
        // The server's own count agrees with loadgen's.
        assert_eq!(server.count(|c| &c.resumed), tls.handshakes_resumed);
        assert_eq!(server.count(|c| &c.full), tls.handshakes_full);
        if resume {
            // The first ones (one per slot at most) cannot resume; the rest find a ticket.
            assert!(tls.handshakes_full <= 32, "{tls:?}");
            assert!(tls.handshakes_resumed >= 968, "{tls:?}");
        } else {
            assert_eq!(tls.handshakes_resumed, 0, "{tls:?}");
        }
    }
}

#[test]
fn a_certificate_for_another_name_fails_every_request_as_tls() {
    let server = start();
    let mut s = server.scenario("/health", 20);
    s.churn = true;
    s.tls.as_mut().unwrap().server_name = Some("other.test".into());
    let r = loadgen::run(&s).unwrap();
    assert_eq!((r.requests, r.ok), (20, 0));
    assert_eq!(r.errors.tls, 20, "{:?}", r.errors);
    assert_eq!(server.count(|c| &c.requests), 0);
    // --tls-insecure takes any certificate: the same server now answers.
    s.tls.as_mut().unwrap().verify = Verify::Insecure;
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.ok, 20, "{}", r.summary());
    // A keep-alive run cannot start without its handshakes, and says so.
    let mut s = server.scenario("/health", 20);
    s.tls.as_mut().unwrap().server_name = Some("other.test".into());
    let e = loadgen::run(&s).unwrap_err();
    assert!(
        format!("{:#}", anyhow::Error::from(e)).contains("TLS handshake"),
        "the cause is named"
    );
}

#[test]
fn a_server_that_speaks_no_tls_fails_the_handshake() {
    // Plain HTTP: answers the ClientHello with an HTTP error and closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut b = [0u8; 1024];
            let _ = stream.read(&mut b);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        }
    });
    let mut s = Scenario::new(Target::from_addr(addr, "/").unwrap());
    s.churn = true;
    s.connections = 2;
    s.stop = Stop::Requests(10);
    s.tls = Some(TlsOptions::new(Verify::Insecure));
    let r = loadgen::run(&s).unwrap();
    assert_eq!(
        (r.requests, r.ok, r.errors.tls),
        (10, 0, 10),
        "{:?}",
        r.errors
    );
}
