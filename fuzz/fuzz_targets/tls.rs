#![no_main]
//! The path from TLS records into HTTP, two ways, chosen by the first byte:
//! - raw: arbitrary bytes as the ciphertext a client sends from the start (the ClientHello
//!   parser, the record layer, the plain-HTTP and alert answers), cut into arbitrary pieces,
//!   through an arbitrarily small output room;
//! - after a real handshake with rustls' own client: arbitrary bytes as the client's plaintext
//!   (valid records carrying any HTTP), then arbitrary bytes as raw records.
//! Never a panic; never more input or output claimed than given; every run ends.
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::pem::PemObject;
use xgate_core::app::{App, AppConfig};
use xgate_core::http::{HttpConn, HttpLimits};
use xgate_core::time::{Duration, Instant};
use xgate_core::tls::{CertificatePem, TlsConn, TlsOptions, TlsSettings, TlsShared, TlsThread};

struct Fixture {
    settings: Arc<TlsSettings>,
    client: Arc<rustls::ClientConfig>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["fuzz.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (chain, key_pem) = (cert.pem(), key.serialize_pem());
        let names = vec!["fuzz.test".to_string()];
        let pem = CertificatePem {
            cert_label: "fuzz.crt",
            cert_chain: chain.as_bytes(),
            key_label: "fuzz.key",
            key: key_pem.as_bytes(),
            server_names: &names,
            default: true,
        };
        let shared = TlsShared::new(16).unwrap();
        let settings = Arc::new(TlsSettings::build(&[pem], TlsOptions::default(), &shared).unwrap());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Fixture {
            settings,
            client: Arc::new(client),
        }
    })
}

struct Server {
    tls: TlsConn,
    http: HttpConn,
    app: App,
    thread: TlsThread,
    now: Instant,
    /// Ciphertext not yet consumed.
    pending: Vec<u8>,
    out: Vec<u8>,
    rounds: usize,
}

impl Server {
    fn new(out_room: usize) -> Self {
        let now = Instant::from_secs(1);
        let mut tls = TlsConn::default();
        tls.open(fixture().settings.clone(), now, TlsConn::plain_capacity(16 * 1024));
        Server {
            tls,
            http: HttpConn::new(HttpLimits::default()),
            app: App::new(&AppConfig::default()).unwrap(),
            thread: TlsThread::new(0),
            now,
            pending: Vec::new(),
            out: vec![0u8; out_room],
            rounds: 0,
        }
    }

    /// Runs until nothing moves; returns what the server wrote.
    fn run(&mut self) -> Vec<u8> {
        let mut wrote = Vec::new();
        loop {
            self.rounds += 1;
            assert!(self.rounds < 1_000_000, "no progress bound reached");
            let (app, now) = (&self.app, self.now);
            let p = self.tls.process(
                now,
                &mut self.thread,
                &self.pending,
                &mut self.out,
                &mut self.http,
                |h, i, o| h.process(now, app, i, o),
            );
            assert!(p.consumed <= self.pending.len());
            assert!(p.produced <= self.out.len());
            self.pending.drain(..p.consumed);
            wrote.extend_from_slice(&self.out[..p.produced]);
            if p.consumed == 0 && p.produced == 0 {
                return wrote;
            }
        }
    }

    fn closed(&self) -> bool {
        self.tls.wants_close(self.http.wants_close())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let out_room = 41 + usize::from(ctl) * 64;
    let mut server = Server::new(out_room);
    if ctl & 1 == 0 {
        // Raw ciphertext from the start, in pieces.
        let piece = 1 + usize::from(ctl >> 1) % 97;
        for chunk in rest.chunks(piece) {
            server.pending.extend_from_slice(chunk);
            server.run();
            if server.closed() {
                break;
            }
        }
        server.now += Duration::from_secs(30);
        let _ = server.tls.handle_timeout(server.now, &mut server.thread);
        server.run();
        // No input can finish a handshake (it would need the client's keys): once the
        // handshake timeout has passed, the connection is to close.
        assert!(server.closed(), "an unfinished handshake outlived its timeout");
        return;
    }
    // A real handshake, then the input as the client's plaintext and as raw records.
    let f = fixture();
    let name = rustls::pki_types::ServerName::try_from("fuzz.test").unwrap();
    let mut client = rustls::ClientConnection::new(f.client.clone(), name).unwrap();
    client.set_buffer_limit(None);
    let split = rest.len() * usize::from(ctl >> 1) / 128;
    let (plain, raw) = rest.split_at(split.min(rest.len()));
    client.writer().write_all(plain).unwrap();
    for _ in 0..64 {
        let mut sent = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut sent).unwrap();
        }
        server.pending.extend_from_slice(&sent);
        let back = server.run();
        if back.is_empty() && sent.is_empty() {
            break;
        }
        let mut rd = &back[..];
        while !rd.is_empty() {
            match client.read_tls(&mut rd) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if client.process_new_packets().is_err() {
                return; // the server's alert, or an answer the client refuses: an end
            }
            let mut sink = [0u8; 4096];
            while matches!(client.reader().read(&mut sink), Ok(n) if n > 0) {}
        }
        if server.closed() {
            return;
        }
    }
    // Raw bytes after the session's records: an alert and a close, or nothing.
    server.pending.extend_from_slice(raw);
    server.run();
});
