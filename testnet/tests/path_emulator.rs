//! The path emulator in a routed topology, Linux TCP on both ends (root only): the handshake
//! pays the round trip, a transfer each way through a lossy bottleneck is byte-exact, takes
//! at least what the bottleneck allows, and shows its losses; stopping removes the rules.
//! Times are checked only from below (a loaded machine makes everything slower, never
//! faster).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xgate_testnet::netns;
use xgate_testnet::path::{PathEmulator, PathShape, MAX_HELD};
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
    let topo = Topology::create_routed(&TopologyConfig {
        tag: "pem",
        server_ip: Ipv4Addr::new(10, 233, 0, 1),
        client_ip: Ipv4Addr::new(10, 233, 0, 6),
        queues: 1,
        // Every packet the hook sees is one on the wire.
        server_offloads_off: true,
        client_gro: false,
        threaded_napi: None,
    })
    .expect("topology");
    let addr = SocketAddrV4::new(topo.server_ip, PORT);
    let listener = netns::run_in(&topo.server_ns, move || TcpListener::bind(addr)).expect("bind");
    // A download, then an upload.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(&pattern(BYTES)).expect("send");
        drop(s);
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::with_capacity(BYTES);
        s.read_to_end(&mut got).expect("receive");
        got
    });

    // 30 ms of round trip, 20 Mbit/s, 1% loss each way.
    let rtt = Duration::from_millis(30);
    let rate = 20_000_000u64;
    let router = topo.router.clone().expect("a routed topology");
    let emulator = PathEmulator::start(
        &router,
        PathShape::symmetric(rtt, Some(rate), 10_000),
        40,
        1,
    )
    .expect("emulator");

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

    let started = Instant::now();
    let mut up = netns::connect_in(&topo.client_ns, addr, Duration::from_secs(10))
        .expect("connect through the path");
    up.write_all(&pattern(BYTES)).expect("upload");
    up.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let received = server.join().expect("server");
    let up_took = started.elapsed();
    assert!(
        received == pattern(BYTES),
        "{} bytes up, not the ones sent",
        received.len()
    );
    assert!(
        up_took >= floor,
        "{BYTES} bytes up in {up_took:?}, under {floor:?}"
    );

    let stats = emulator.stats();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "{}; handshake {handshake:?}, download {took:?}, upload {up_took:?}",
        stats.summary()
    );
    for (way, d) in [("down", &stats.down), ("up", &stats.up)] {
        assert!(
            get(&d.packets) as usize >= BYTES / 1500,
            "{way}: {}",
            stats.summary()
        );
        assert!(
            get(&d.lost) > 0,
            "{way}: no loss drawn: {}",
            stats.summary()
        );
        assert!(
            (get(&d.max_held) as usize) < MAX_HELD,
            "{way}: the kernel's queue may have overflowed: {}",
            stats.summary()
        );
    }

    emulator.stop().expect("stop");
    let rules = run(&["ip", "netns", "exec", &router.ns, "iptables", "-S"]).expect("iptables");
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains("NFQUEUE"), "rules left behind:\n{rules}");
}

#[test]
fn the_clients_congestion_control_is_set_by_its_route_not_the_hosts_default() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (network namespaces)");
        return;
    }
    let topo = Topology::create_routed(&TopologyConfig {
        tag: "pcc",
        server_ip: Ipv4Addr::new(10, 233, 4, 1),
        client_ip: Ipv4Addr::new(10, 233, 4, 6),
        queues: 1,
        server_offloads_off: true,
        client_gro: false,
        threaded_napi: None,
    })
    .expect("topology");
    // Whichever the host's default is not, so that the test sees the route's doing.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("the host's default");
    let wanted = if host.trim() == "reno" {
        "cubic"
    } else {
        "reno"
    };
    topo.set_client_congestion_control(wanted)
        .expect("congctl on the client's route");
    assert!(
        topo.set_client_congestion_control("no_such_algorithm")
            .is_err(),
        "an unknown algorithm was taken"
    );
    // The refused change left the route as it was.
    let addr = SocketAddrV4::new(topo.server_ip, PORT + 1);
    let listener = netns::run_in(&topo.server_ns, move || TcpListener::bind(addr)).expect("bind");
    let stream = netns::connect_in(&topo.client_ns, addr, Duration::from_secs(10))
        .expect("connect through the router");
    let (_accepted, _) = listener.accept().expect("accept");
    let ss = run(&[
        "ip",
        "netns",
        "exec",
        &topo.client_ns,
        "ss",
        "-tin",
        "dst",
        &addr.to_string(),
    ])
    .expect("ss");
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(
        ss.split_whitespace().any(|w| w == wanted),
        "the client's connection does not use {wanted}:\n{ss}"
    );
    drop(stream);
}
