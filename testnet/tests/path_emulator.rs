//! The path emulator on a real topology, Linux TCP on both ends (root only): the handshake
//! pays the round trip, a transfer through a lossy bottleneck is byte-exact, takes at least
//! what the bottleneck allows, and shows its losses; stopping removes the rules. Times are
//! checked only from below (a loaded machine makes everything slower, never faster).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

use xgate_testnet::netns;
use xgate_testnet::path::{PathEmulator, PathShape};
use xgate_testnet::{is_root, run, Topology, TopologyConfig};

const PORT: u16 = 18990;
const BYTES: usize = 2 << 20;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_lossy_bottleneck_path_delays_spaces_and_drops_but_tcp_gets_everything_through() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (network namespaces, iptables NFQUEUE)");
        return;
    }
    let topo = Topology::create(&TopologyConfig {
        tag: "pem",
        server_ip: Ipv4Addr::new(10, 233, 0, 1),
        client_ip: Ipv4Addr::new(10, 233, 0, 2),
        queues: 1,
        // Every packet the hooks see is one on the wire.
        server_offloads_off: true,
        client_gro: false,
        threaded_napi: None,
    })
    .expect("topology");
    let addr = SocketAddrV4::new(topo.server_ip, PORT);
    let listener = netns::run_in(&topo.server_ns, move || TcpListener::bind(addr)).expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(&pattern(BYTES)).expect("send");
    });

    // 30 ms of round trip, 20 Mbit/s, 1% loss each way.
    let rtt = Duration::from_millis(30);
    let rate = 20_000_000u64;
    let emulator = PathEmulator::start(
        &topo.client_ns,
        PathShape::symmetric(rtt, Some(rate), 10_000),
        40,
        1,
    )
    .expect("emulator");

    // A lost SYN or SYN-ACK costs a second; a few tries keep the check about the delay.
    let started = Instant::now();
    let mut stream = netns::connect_in(&topo.client_ns, addr, Duration::from_secs(10))
        .expect("connect through the path");
    let handshake = started.elapsed();
    assert!(
        handshake >= rtt,
        "the handshake took {handshake:?}, under the {rtt:?} RTT"
    );

    let mut got = Vec::with_capacity(BYTES);
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.read_to_end(&mut got).expect("receive");
    let took = started.elapsed();
    server.join().expect("server");
    assert!(
        got == pattern(BYTES),
        "{} bytes, not the ones sent",
        got.len()
    );
    // The bottleneck alone needs BYTES x 8 / rate (headers make it longer still).
    let floor = Duration::from_secs_f64(BYTES as f64 * 8.0 / rate as f64);
    assert!(
        took >= floor,
        "{BYTES} bytes in {took:?}, under the {floor:?} the rate allows"
    );

    let stats = emulator.stats();
    let down = |f: fn(&xgate_testnet::path::DirectionStats) -> &std::sync::atomic::AtomicU64| {
        f(&stats.down).load(std::sync::atomic::Ordering::Relaxed)
    };
    eprintln!(
        "{}; handshake {handshake:?}, transfer {took:?}",
        stats.summary()
    );
    assert!(
        down(|s| &s.packets) as usize >= BYTES / 1500,
        "{}",
        stats.summary()
    );
    assert!(down(|s| &s.lost) > 0, "no loss drawn: {}", stats.summary());
    assert!(
        (down(|s| &s.max_held) as usize) < xgate_testnet::path::MAX_HELD,
        "the kernel's queue may have overflowed: {}",
        stats.summary()
    );

    emulator.stop().expect("stop");
    let rules = run(&["ip", "netns", "exec", &topo.client_ns, "iptables", "-S"]).expect("iptables");
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains("NFQUEUE"), "rules left behind:\n{rules}");
}
