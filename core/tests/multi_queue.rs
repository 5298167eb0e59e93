//! One engine per RX queue, one SYN-cookie secret for all of them (issue 15, item 3): a
//! handshake whose SYN one queue's engine answered completes on another queue's engine, in
//! both families, because every SYN-ACK's ISN is a cookie of the shared secret. A NIC keeps a
//! flow on one queue as long as its RSS table does not change; when an operator changes the
//! table (`ethtool -X`) or the queue count, or a flow's hash is computed differently for the
//! ACK than for the SYN, the ACK lands elsewhere and must still be a connection, not a reset.
//! And path MTU errors: the queue they land on, and what an engine keeps of them for the next
//! connections to the same destination.

use xgate_core::app::{App, AppConfig};
use xgate_core::engine::{Engine, EngineConfig};
use xgate_core::tcp::FOREIGN_PMTU_MAX;
use xgate_core::testkit::ScriptedClient;
use xgate_core::time::Instant;
use xgate_core::wire::TcpFlags;

fn engine(secret: [u8; 32], now: Instant) -> Engine {
    let app = App::new(&AppConfig::default()).expect("the default app");
    Engine::new(EngineConfig::default(), app, secret, now)
}

/// Every frame the engine has to send, as the client takes them; returns their flags.
fn pump(
    engine: &mut Engine,
    now: Instant,
    client: &mut ScriptedClient,
    sink: &mut Vec<u8>,
) -> Vec<TcpFlags> {
    let mut out = vec![0u8; 2048];
    let mut flags = Vec::new();
    while let Some(n) = engine.poll_transmit(now, &mut out) {
        if let Some(r) = client.receive(&out[..n], Some(sink)) {
            flags.push(r.flags);
        }
    }
    flags
}

/// The SYN to `first`, the rest of the connection to `second`: what `second` answers to a
/// `GET /health` sent with the handshake's ACK, and the flags of every frame it sent.
fn handshake_across(
    first: &mut Engine,
    second: &mut Engine,
    now: Instant,
    mut client: ScriptedClient,
) -> (Vec<u8>, Vec<TcpFlags>) {
    let mut buf = Vec::new();
    let n = client.syn(&mut buf, true);
    first
        .handle_frame(now, &buf[..n])
        .expect("the SYN is taken");
    let synack = pump(first, now, &mut client, &mut Vec::new());
    assert_eq!(synack, vec![TcpFlags::SYN | TcpFlags::ACK]);

    let mut got = Vec::new();
    let mut flags = Vec::new();
    let n = client.send(&mut buf, &[]);
    let _ = second.handle_frame(now, &buf[..n]);
    flags.extend(pump(second, now, &mut client, &mut got));
    let n = client.send(&mut buf, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    let _ = second.handle_frame(now, &buf[..n]);
    flags.extend(pump(second, now, &mut client, &mut got));
    (got, flags)
}

#[test]
fn a_handshake_begun_on_one_queue_completes_on_another_in_both_families() {
    let now = Instant::from_secs(50);
    let secret = [0x5au8; 32];
    let (mut q0, mut q1) = (engine(secret, now), engine(secret, now));
    for client in [
        ScriptedClient::new(41_000, 80, 0x1234_5678),
        ScriptedClient::new_ipv6(41_001, 80, 0x9000_0000),
    ] {
        let (got, flags) = handshake_across(&mut q0, &mut q1, now, client);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text} {flags:?}");
        assert!(
            !flags.iter().any(|f| f.contains(TcpFlags::RST)),
            "{flags:?}"
        );
    }
    assert_eq!(
        q1.connection_count(),
        2,
        "both connections live on the second queue"
    );
    assert_eq!(
        q0.connection_count(),
        0,
        "the first queue holds no connection"
    );
}

/// The proof above needs the secret to be shared: with another secret the ACK is no cookie
/// of the second engine's, which answers it with a reset (RFC 9293: an ACK for a connection
/// that does not exist) and serves nothing.
#[test]
fn with_another_secret_the_ack_is_refused() {
    let now = Instant::from_secs(50);
    let (mut q0, mut q1) = (engine([1; 32], now), engine([2; 32], now));
    let (got, flags) = handshake_across(&mut q0, &mut q1, now, ScriptedClient::new(41_002, 80, 77));
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(flags.iter().any(|f| f.contains(TcpFlags::RST)), "{flags:?}");
    assert_eq!(q1.connection_count(), 0);
}

/// A path MTU error lands on the queue the NIC hashes its addresses to, not necessarily the
/// connection's: the engine that receives it keeps it (`forward_foreign_pmtu`) for the caller
/// to hand to the connection's engine, which lowers the MSS; without forwarding it is an
/// unknown flow, counted where it landed.
#[test]
fn a_path_mtu_error_on_another_queue_reaches_its_connection() {
    let now = Instant::from_secs(50);
    let secret = [0x33u8; 32];
    for forward in [true, false] {
        let (mut q0, mut q1) = (engine(secret, now), engine(secret, now));
        q0.forward_foreign_pmtu(forward);
        q1.forward_foreign_pmtu(forward);
        // A connection on q1 with a response in flight (not yet acknowledged).
        let mut client = ScriptedClient::new(41_100, 80, 5);
        let mut buf = Vec::new();
        let n = client.syn(&mut buf, true);
        q1.handle_frame(now, &buf[..n]).unwrap();
        pump(&mut q1, now, &mut client, &mut Vec::new());
        let n = client.send(&mut buf, b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n");
        q1.handle_frame(now, &buf[..n]).unwrap();
        let mut out = vec![0u8; 2048];
        let first = q1
            .poll_transmit(now, &mut out)
            .expect("the response begins");
        let seq = xgate_core::wire::parse_tcp_frame(&out[..first])
            .unwrap()
            .tcp
            .seq;
        // The router's error for that segment arrives on q0.
        let n = client.too_big(&mut buf, 1280, seq);
        q0.handle_frame(now, &buf[..n]).unwrap();
        let mut forwarded = 0;
        while let Some(m) = q0.poll_foreign_pmtu() {
            q1.handle_forwarded_pmtu(now, &m);
            forwarded += 1;
        }
        let (s0, s1) = (q0.tcp_stats(), q1.tcp_stats());
        if forward {
            assert_eq!(forwarded, 1);
            assert_eq!((s0.pmtu_unknown_flow, s0.pmtu_ignored), (0, 0));
            assert_eq!(
                s1.pmtu_lowered, 1,
                "the connection's engine lowered its MSS"
            );
            // Kept for another queue up to a bound between two polls; the rest are counted.
            let extra = 3;
            for _ in 0..FOREIGN_PMTU_MAX + extra {
                let n = client.too_big(&mut buf, 1280, seq);
                q0.handle_frame(now, &buf[..n]).unwrap();
            }
            let kept = std::iter::from_fn(|| q0.poll_foreign_pmtu()).count();
            assert_eq!(kept, FOREIGN_PMTU_MAX);
            assert_eq!(q0.tcp_stats().pmtu_unknown_flow, extra as u64);
        } else {
            assert_eq!(forwarded, 0);
            assert_eq!(s0.pmtu_unknown_flow, 1);
            assert_eq!(s1.pmtu_lowered, 0);
        }
    }
}

/// RFC 1191 §5 / RFC 8201 §5.2: the path MTU belongs to the destination. After a "too big"
/// lowered one connection's MSS, the next connection from the same client starts with the
/// lowered MSS (its first flight fits the path), one from another client does not, and after
/// ten minutes (Linux's `ip_rt_mtu_expires`) the lesson is forgotten.
#[test]
fn rfc1191_5_a_lowered_mss_holds_for_the_next_connections_to_that_destination() {
    let mut now = Instant::from_secs(50);
    let mut q = engine([0x44u8; 32], now);
    let largest_frame = |q: &mut Engine, now: Instant, port: u16, other_client: bool| {
        let mut client = ScriptedClient::new(port, 80, 9);
        if other_client {
            client.addrs.ip = xgate_core::wire::IpPair::V4 {
                src: "10.0.0.9".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
            };
        }
        let mut buf = Vec::new();
        let n = client.syn(&mut buf, false);
        q.handle_frame(now, &buf[..n]).unwrap();
        pump(q, now, &mut client, &mut Vec::new());
        let n = client.send(&mut buf, b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n");
        q.handle_frame(now, &buf[..n]).unwrap();
        let mut out = vec![0u8; 2048];
        let mut largest = 0;
        let mut first = None;
        while let Some(n) = q.poll_transmit(now, &mut out) {
            largest = largest.max(n);
            first.get_or_insert_with(|| out[..n].to_vec());
        }
        (largest, first.expect("the response began"), client)
    };
    let (full, first, client) = largest_frame(&mut q, now, 42_000, false);
    assert_eq!(full, 14 + 1500, "a full Ethernet frame before any lesson");
    let seq = xgate_core::wire::parse_tcp_frame(&first).unwrap().tcp.seq;
    let mut buf = Vec::new();
    let n = client.too_big(&mut buf, 1200, seq);
    q.handle_frame(now, &buf[..n]).unwrap();
    assert_eq!(q.tcp_stats().pmtu_lowered, 1);

    let (next, _, _) = largest_frame(&mut q, now, 42_001, false);
    assert_eq!(
        next,
        14 + 1200,
        "the same client's next connection fits the path at once"
    );
    let (other, _, _) = largest_frame(&mut q, now, 42_002, true);
    assert_eq!(other, 14 + 1500, "another client's path is its own");
    now += xgate_core::time::Duration::from_secs(601);
    let (later, _, _) = largest_frame(&mut q, now, 42_003, false);
    assert_eq!(later, 14 + 1500, "forgotten after ten minutes");
}
