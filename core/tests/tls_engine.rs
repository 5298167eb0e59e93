//! The bypass engine's TLS handshake budget, frame by frame: a ClientHello beyond the round's
//! budget waits; a connection that waited and went away leaves no trace that could keep the
//! next connection of its slot waiting; a waiting connection whose handshake times out leaves
//! the queue.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use xgate_core::app::{App, AppConfig};
use xgate_core::engine::{Engine, EngineConfig};
use xgate_core::proxy::forwarder::Direct;
use xgate_core::testkit::ScriptedClient;
use xgate_core::time::{Duration, Instant};
use xgate_core::tls::{CertificatePem, TlsOptions, TlsPorts, TlsSettings, TlsShared};
use xgate_core::wire::TcpFlags;

const PORT: u16 = 443;

struct Fx {
    engine: Engine,
    client_config: Arc<rustls::ClientConfig>,
    buf: Vec<u8>,
    out: Vec<u8>,
    now: Instant,
}

struct Client {
    tcp: ScriptedClient,
    tls: rustls::ClientConnection,
    /// What the server sent this client.
    got: Vec<u8>,
}

impl Fx {
    fn new(per_round: u32, handshake_timeout: Duration) -> Fx {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["engine.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (chain, key_pem) = (cert.pem(), key.serialize_pem());
        let names = vec!["engine.test".to_string()];
        let pem = CertificatePem {
            cert_label: "t.crt",
            cert_chain: chain.as_bytes(),
            key_label: "t.key",
            key: key_pem.as_bytes(),
            server_names: &names,
            default: true,
        };
        let options = TlsOptions {
            handshake_timeout,
            ..TlsOptions::default()
        };
        let settings = TlsSettings::build(&[pem], options, &TlsShared::new(0).unwrap()).unwrap();
        let ports = Arc::new(TlsPorts::new(vec![(PORT, Arc::new(settings))]));
        let app = App::for_generation(&AppConfig::default(), None, Some(&ports)).unwrap();
        let now = Instant::from_secs(100);
        let config = EngineConfig {
            tls_handshakes_per_round: per_round,
            ..EngineConfig::default()
        };
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).unwrap())
            .unwrap();
        let client_config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Fx {
            engine: Engine::new(config, app, [7; 32], now),
            client_config: Arc::new(client_config),
            buf: Vec::new(),
            out: vec![0u8; 4096],
            now,
        }
    }

    /// The TCP handshake of a new client.
    fn connect(&mut self, src_port: u16) -> Client {
        let mut tcp = ScriptedClient::new(src_port, PORT, 1000 * u32::from(src_port));
        let n = tcp.syn(&mut self.buf, true);
        self.engine.handle_frame(self.now, &self.buf[..n]).unwrap();
        let mut client = Client {
            tcp,
            tls: rustls::ClientConnection::new(
                self.client_config.clone(),
                "engine.test".try_into().unwrap(),
            )
            .unwrap(),
            got: Vec::new(),
        };
        self.pump(&mut client);
        let n = client.tcp.send(&mut self.buf, &[]);
        self.engine.handle_frame(self.now, &self.buf[..n]).unwrap();
        self.pump(&mut client);
        client
    }

    /// Frames from the engine to this client.
    fn pump(&mut self, client: &mut Client) {
        while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
            client.tcp.receive(&self.out[..n], Some(&mut client.got));
        }
        while self.engine.poll_flow_event().is_some() {}
    }

    /// The client's ClientHello (or whatever TLS has to send) to the engine.
    fn send_tls(&mut self, client: &mut Client) {
        let mut bytes = Vec::new();
        while client.tls.wants_write() {
            client.tls.write_tls(&mut bytes).unwrap();
        }
        let n = client.tcp.send(&mut self.buf, &bytes);
        self.engine.handle_frame(self.now, &self.buf[..n]).unwrap();
        self.pump(client);
    }

    fn reset(&mut self, client: &mut Client) {
        let hdr = client.tcp.header(TcpFlags::RST | TcpFlags::ACK);
        let n = client.tcp.frame(&mut self.buf, &hdr, &[]);
        self.engine.handle_frame(self.now, &self.buf[..n]).unwrap();
        self.pump(client);
    }

    fn round(&mut self) {
        self.engine.begin_round(self.now, &mut Direct);
    }
}

#[test]
fn a_client_hello_beyond_the_budget_waits_for_the_next_round() {
    let mut fx = Fx::new(1, Duration::from_secs(10));
    fx.round();
    let (mut a, mut b) = (fx.connect(5001), fx.connect(5002));
    fx.send_tls(&mut a);
    assert!(
        !a.got.is_empty(),
        "the first ClientHello of the round is answered"
    );
    fx.send_tls(&mut b);
    assert!(b.got.is_empty(), "the second waits");
    assert!(fx.engine.has_deferred_handshakes());
    assert_eq!(fx.engine.tls_stats().handshakes_deferred, 1);
    fx.round();
    fx.pump(&mut b);
    assert!(!b.got.is_empty(), "answered the next round");
    assert!(!fx.engine.has_deferred_handshakes());
}

#[test]
fn a_waiting_connection_that_goes_away_does_not_hold_up_its_slot_s_next_one() {
    let mut fx = Fx::new(1, Duration::from_secs(10));
    fx.round();
    let mut a = fx.connect(5001);
    fx.send_tls(&mut a); // takes the round's budget
    let mut b = fx.connect(5002);
    fx.send_tls(&mut b);
    assert!(b.got.is_empty() && fx.engine.has_deferred_handshakes());
    fx.reset(&mut b);
    // A new connection (likely in b's slot), its ClientHello again beyond the budget.
    let mut c = fx.connect(5003);
    fx.send_tls(&mut c);
    assert!(c.got.is_empty());
    for _ in 0..3 {
        fx.round();
        fx.pump(&mut c);
    }
    assert!(
        !c.got.is_empty(),
        "the new connection was queued and served"
    );
    assert!(!fx.engine.has_deferred_handshakes());
}

#[test]
fn a_waiting_handshake_that_times_out_leaves_the_queue() {
    let mut fx = Fx::new(1, Duration::from_secs(2));
    fx.round();
    let mut a = fx.connect(5001);
    fx.send_tls(&mut a);
    let mut b = fx.connect(5002);
    fx.send_tls(&mut b);
    assert!(fx.engine.has_deferred_handshakes());
    // Rounds pass without budget for b: a flood's newer ClientHellos take it first.
    fx.now += Duration::from_secs(3);
    fx.engine.handle_timeout(fx.now);
    fx.pump(&mut b);
    for port in 6000..6004 {
        fx.round();
        let mut x = fx.connect(port);
        fx.send_tls(&mut x);
    }
    fx.pump(&mut b);
    assert!(b.got.is_empty(), "no ServerHello after the deadline");
    assert!(b.tcp.server_fin, "the timed-out connection is closed");
    assert!(!fx.engine.has_deferred_handshakes());
    // b, and a, whose client never answered its ServerHello.
    assert_eq!(
        fx.engine
            .tls_stats()
            .failures_of(xgate_core::tls::TlsFailure::Timeout),
        2
    );
}
