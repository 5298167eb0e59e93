//! Root-only end-to-end test of the steering programs and the AF_XDP socket, in network
//! namespaces, a veth pair and a cgroup that the test creates and always removes.
//!
//! Topology: netns `<p>g` holds veth `<p>g` (the gateway side, XDP attached, 10.77.0.1/30);
//! netns `<p>c` holds veth `<p>c` (the client, 10.77.0.2/30, offloads off). The kernel
//! listener is a small python3 process started inside a test cgroup (so sock_ops sees it)
//! and inside the gateway netns. The test thread itself enters the gateway netns to load the
//! programs and bind the AF_XDP socket, and goes back before cleaning up.
//!
//! Skips (passes with a message) when not run as root.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{is_root, lines_of, run, wait_for, Topology, CLIENT_IP, GW_IP};
use dataplane::afxdp::{rx_queue_count, XskConfig, XskQueue};
use dataplane::bpf::{
    AttachedMode, PortState, Stat, Steering, SteeringConfig, SteeringError, XdpMode, XdpVerdict,
};
use dataplane::tcp::FlowKey;

const LISTEN_PORT: u16 = 18080;
const UNLISTENED_PORT: u16 = 18081;
/// A port some other process (outside the gateway's cgroup) listens on.
const FOREIGN_PORT: u16 = 18082;

/// TCP destination port and flags of an Ethernet/IPv4/TCP frame.
fn tcp_dport_flags(frame: &[u8]) -> Option<(u16, u8)> {
    if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let tcp = frame.get(14 + ihl..14 + ihl + 20)?;
    Some((u16::from_be_bytes([tcp[2], tcp[3]]), tcp[13]))
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// Drains the sockets for `dur`, returning (dst port, flags) of every TCP segment seen.
fn drain(xsks: &mut [XskQueue], dur: Duration) -> Vec<(u16, u8)> {
    let mut seen = Vec::new();
    let start = Instant::now();
    while start.elapsed() < dur {
        let mut got = 0;
        for q in xsks.iter_mut() {
            got += q.recv_batch(64, |f| {
                if let Some(x) = tcp_dport_flags(f) {
                    seen.push(x);
                }
            });
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    seen
}

/// A RST|ACK answering `syn` (an Ethernet/IPv4/TCP SYN): addresses swapped, both checksums.
fn rst_for(syn: &[u8]) -> Vec<u8> {
    let ihl = usize::from(syn[14] & 0x0f) * 4;
    let tcp_in = &syn[14 + ihl..];
    let seq = u32::from_be_bytes([tcp_in[4], tcp_in[5], tcp_in[6], tcp_in[7]]);
    let src: [u8; 4] = syn[30..34].try_into().unwrap(); // the SYN's destination
    let dst: [u8; 4] = syn[26..30].try_into().unwrap();
    let sport = u16::from_be_bytes([tcp_in[2], tcp_in[3]]);
    let dport = u16::from_be_bytes([tcp_in[0], tcp_in[1]]);
    let mut f = tcp_frame(src, dst, sport, dport, RST | ACK, 0x4000, false);
    f[0..6].copy_from_slice(&syn[6..12]);
    f[6..12].copy_from_slice(&syn[0..6]);
    let tcp = &mut f[34..54];
    tcp[4..8].copy_from_slice(&0u32.to_be_bytes());
    tcp[8..12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
    tcp[14..16].copy_from_slice(&0u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&f[34..54]);
    let c = checksum(&pseudo);
    f[34 + 16..34 + 18].copy_from_slice(&c.to_be_bytes());
    let c = checksum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    f
}

/// The Internet checksum (RFC 1071) of `data` (its checksum field zeroed).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Connections the kernel listener reported accepting.
struct Accepts {
    lines: Receiver<String>,
    seen: usize,
}

impl Accepts {
    fn total(&mut self) -> usize {
        self.seen += self
            .lines
            .try_iter()
            .filter(|l| l.starts_with("accepted"))
            .count();
        self.seen
    }
}

/// Ethernet (optionally 802.1Q) / IPv4 / TCP, 20-byte TCP header, no payload. Checksums are
/// left zero: XDP does not look at them and nothing is sent.
fn tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    frag: u16,
    vlan: bool,
) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    f.extend_from_slice(&tcp);
    f
}

fn scenario(mode: XdpMode) {
    if !is_root() {
        eprintln!("SKIPPED: the steering test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let mut topo = Topology::create();
    topo.enter_gateway();

    // Typed errors before anything is created.
    let bad_if = SteeringConfig::new(format!("{}z", topo.name), topo.cgroup.clone());
    assert!(matches!(
        Steering::load(&bad_if),
        Err(SteeringError::Interface { .. })
    ));
    let not_cgroup2 = SteeringConfig::new(topo.server_if.clone(), "/proc");
    assert!(matches!(
        Steering::load(&not_cgroup2),
        Err(SteeringError::NotCgroup2(_))
    ));

    let mut config = SteeringConfig::new(topo.server_if.clone(), topo.cgroup.clone());
    config.xdp_mode = mode;
    let steering = Steering::load(&config).expect("loading steering");
    let pin_dir = steering.pin_dir().to_path_buf();
    match mode {
        XdpMode::Native => assert_eq!(steering.attached_mode(), AttachedMode::Native),
        XdpMode::Generic => assert_eq!(steering.attached_mode(), AttachedMode::Generic),
        XdpMode::Auto => {}
    }
    eprintln!(
        "XDP attached {:?} on {}",
        steering.attached_mode(),
        topo.server_if
    );
    for name in ["xsks", "ports", "listeners", "user_flows", "stats"] {
        let meta = fs::metadata(pin_dir.join(name)).expect("pinned map");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
    }
    let maps = steering.maps();

    let queues = rx_queue_count(&topo.server_if).expect("channel count");
    let xsk_config = XskConfig::new(topo.server_if.clone());
    let mut xsks: Vec<XskQueue> = (0..queues)
        .map(|q| XskQueue::open(&xsk_config, q, maps).expect("AF_XDP socket"))
        .collect();
    eprintln!(
        "{} AF_XDP socket(s), bound {:?}",
        xsks.len(),
        xsks[0].bound()
    );

    // The listener's tag appears.
    let (listener, lines) = topo.start_listener(LISTEN_PORT);
    let mut accepts = Accepts { lines, seen: 0 };
    wait_for("listener tag", Duration::from_secs(5), || {
        maps.listener(LISTEN_PORT).unwrap().is_some()
    });
    assert!(maps.listener(UNLISTENED_PORT).unwrap().is_none());

    // ARP and ICMP keep working with the program attached.
    run(&[
        "ip",
        "-n",
        &topo.client_ns,
        "neigh",
        "flush",
        "dev",
        &topo.client_if,
    ]);
    assert!(topo.ping(), "ping through the XDP program");

    // Port ON: the SYN goes to AF_XDP, the kernel listener accepts nothing, and a RST sent
    // back through the AF_XDP TX ring refuses the connection at once (RX and TX both work).
    maps.set_port_state(LISTEN_PORT, PortState::On).unwrap();
    let mut client = topo.spawn_connect(LISTEN_PORT, None, 3);
    let mut syns = Vec::new();
    let mut sent = 0;
    let start = Instant::now();
    while client.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(4) {
        for q in xsks.iter_mut() {
            let mut frames: Vec<Vec<u8>> = Vec::new();
            q.recv_batch(64, |f| frames.push(f.to_vec()));
            for f in frames {
                let Some((port, flags)) = tcp_dport_flags(&f) else {
                    continue;
                };
                if port == LISTEN_PORT && flags & SYN != 0 && flags & ACK == 0 {
                    syns.push(f.clone());
                    assert!(q.send(&rst_for(&f)), "no TX frame or slot");
                    q.kick_tx().unwrap();
                    sent += 1;
                }
            }
            q.reclaim();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = client.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!(
        "steered client: {said:?} after {:?}, {sent} RST sent",
        start.elapsed()
    );
    assert!(!syns.is_empty(), "no SYN on the AF_XDP socket");
    assert_eq!(
        said, "error ECONNREFUSED",
        "the RST from AF_XDP TX did not arrive"
    );
    // Idle sockets: poll (the need_wakeup sleep) times out, the kernel saw no bad descriptor.
    for q in xsks.iter_mut() {
        assert!(!q.poll_rx(20).unwrap(), "traffic on an idle socket");
        let st = q.statistics().unwrap();
        assert_eq!(st.rx_invalid_descs() + st.tx_invalid_descs(), 0);
        assert!(q.free_frames() > 0);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        accepts.total(),
        0,
        "kernel listener accepted a steered connection"
    );
    let st = maps
        .port_stats(LISTEN_PORT)
        .unwrap()
        .expect("stats of the port");
    eprintln!("port {LISTEN_PORT} ON: {st:?}");
    assert!(st.get(Stat::SynSteered) >= 1);
    assert!(st.get(Stat::Redirected) >= 1);
    assert_eq!(st.get(Stat::KernelConns), 0);

    // Port OFF: the kernel listener gets the connection.
    maps.set_port_state(LISTEN_PORT, PortState::Off).unwrap();
    let before = maps.port_stats(LISTEN_PORT).unwrap().unwrap();
    assert!(
        topo.client_connect(LISTEN_PORT, None, 2),
        "kernel path did not connect"
    );
    wait_for("kernel accept", Duration::from_secs(3), || {
        accepts.total() >= 1
    });
    let after = maps.port_stats(LISTEN_PORT).unwrap().unwrap();
    assert_eq!(after.get(Stat::Redirected), before.get(Stat::Redirected));
    assert!(after.get(Stat::KernelConns) > before.get(Stat::KernelConns));
    let stray = drain(&mut xsks, Duration::from_millis(100));
    assert!(
        !stray.iter().any(|&(p, _)| p == LISTEN_PORT),
        "segments steered while OFF: {stray:?}"
    );

    // A port nobody listens on is never steered, whatever `ports` says.
    maps.set_port_state(UNLISTENED_PORT, PortState::On).unwrap();
    assert!(!topo.client_connect(UNLISTENED_PORT, None, 1));
    let seen = drain(&mut xsks, Duration::from_millis(200));
    assert!(
        !seen.iter().any(|&(p, _)| p == UNLISTENED_PORT),
        "unlistened port steered: {seen:?}"
    );
    let st = maps.port_stats(UNLISTENED_PORT).unwrap().unwrap();
    assert_eq!(st.get(Stat::Redirected), 0);
    assert!(st.get(Stat::Passed) >= 1);

    // sock_ops tags only the gateway cgroup's listeners: another process's listener is never
    // tagged, so even with its port ON its connections stay with the kernel and reach it.
    let (foreign, foreign_lines) = topo.start_listener_outside_cgroup(FOREIGN_PORT);
    maps.set_port_state(FOREIGN_PORT, PortState::On).unwrap();
    assert!(
        topo.client_connect(FOREIGN_PORT, None, 2),
        "the other process's listener was not reached"
    );
    assert!(foreign_lines
        .recv_timeout(Duration::from_secs(3))
        .is_ok_and(|l| l.starts_with("accepted")));
    assert!(
        maps.listener(FOREIGN_PORT).unwrap().is_none(),
        "a listener outside the gateway's cgroup was tagged"
    );
    let seen = drain(&mut xsks, Duration::from_millis(200));
    assert!(
        !seen.iter().any(|&(p, _)| p == FOREIGN_PORT),
        "a foreign listener's port steered: {seen:?}"
    );
    let st = maps.port_stats(FOREIGN_PORT).unwrap().unwrap();
    assert_eq!(st.get(Stat::Redirected), 0);
    topo.stop_child(foreign);

    // Rule 2, real traffic: a 4-tuple in user_flows goes to user space even with the port OFF.
    assert_eq!(maps.port_state(LISTEN_PORT).unwrap(), Some(PortState::Off));
    let owned = FlowKey::new_v4(
        SocketAddrV4::new(GW_IP.parse().unwrap(), LISTEN_PORT),
        SocketAddrV4::new(CLIENT_IP.parse().unwrap(), 40001),
    );
    maps.add_user_flow(owned, 0).unwrap();
    assert!(maps.has_user_flow(owned).unwrap());
    assert_eq!(maps.user_flows(), vec![owned]);
    let accepted_before = accepts.total();
    assert!(!topo.client_connect(LISTEN_PORT, Some(40001), 1));
    let seen = drain(&mut xsks, Duration::from_millis(300));
    assert!(
        seen.iter().any(|&(p, f)| p == LISTEN_PORT && f & SYN != 0),
        "user flow not steered: {seen:?}"
    );
    assert_eq!(
        accepts.total(),
        accepted_before,
        "kernel accepted a user flow"
    );
    assert!(
        maps.port_stats(LISTEN_PORT)
            .unwrap()
            .unwrap()
            .get(Stat::UserFlow)
            >= 1
    );
    maps.remove_user_flow(owned).unwrap();
    assert!(!maps.has_user_flow(owned).unwrap());

    // Rule 3, real traffic: a connection the kernel accepted while OFF stays with the kernel
    // after the port is switched ON.
    let (_held, mut held_in, held_out, held_port) = topo.held_client(LISTEN_PORT);
    wait_for(
        "kernel accept of the held client",
        Duration::from_secs(3),
        || accepts.total() > accepted_before,
    );
    maps.set_port_state(LISTEN_PORT, PortState::On).unwrap();
    let owned_before = maps.port_stats(LISTEN_PORT).unwrap().unwrap();
    writeln!(held_in, "hello").unwrap();
    let reply = held_out
        .recv_timeout(Duration::from_secs(3))
        .expect("no echo through the kernel after switching ON");
    assert_eq!(reply, "echo hello");
    let owned_after = maps.port_stats(LISTEN_PORT).unwrap().unwrap();
    assert!(owned_after.get(Stat::KernelOwned) > owned_before.get(Stat::KernelOwned));
    assert_eq!(
        owned_after.get(Stat::Redirected),
        owned_before.get(Stat::Redirected)
    );

    // The rules one by one on crafted segments (BPF_PROG_TEST_RUN, this netns, RX queue 0).
    let gw: [u8; 4] = GW_IP.parse::<Ipv4Addr>().unwrap().octets();
    let cl: [u8; 4] = CLIENT_IP.parse::<Ipv4Addr>().unwrap().octets();
    let seg = |sport: u16, dport: u16, flags: u8| tcp_frame(cl, gw, sport, dport, flags, 0, false);
    let verdict = |frame: &[u8]| steering.test_run_xdp(frame).unwrap();
    use XdpVerdict::{Pass, Redirect};
    // ON
    assert_eq!(
        verdict(&seg(held_port, LISTEN_PORT, ACK)),
        Pass,
        "kernel-owned ACK"
    );
    assert_eq!(
        verdict(&seg(40002, LISTEN_PORT, ACK)),
        Redirect,
        "unknown-flow ACK"
    );
    assert_eq!(verdict(&seg(40003, LISTEN_PORT, SYN)), Redirect, "pure SYN");
    assert_eq!(
        verdict(&seg(40003, LISTEN_PORT, SYN | FIN)),
        Pass,
        "SYN|FIN"
    );
    assert_eq!(
        verdict(&tcp_frame(cl, gw, 40004, LISTEN_PORT, SYN, 0, true)),
        Redirect,
        "802.1Q-tagged SYN"
    );
    // Rule 3b: multicast and broadcast destinations are never the bypass's.
    for dst in [[224, 0, 0, 5], [239, 1, 2, 3], [255, 255, 255, 255]] {
        assert_eq!(
            verdict(&tcp_frame(cl, dst, 40007, LISTEN_PORT, SYN, 0, false)),
            Pass,
            "SYN to {dst:?}"
        );
    }
    assert_eq!(
        verdict(&tcp_frame(cl, gw, 40005, LISTEN_PORT, SYN, 0x2000, false)),
        Pass,
        "first fragment"
    );
    assert_eq!(
        verdict(&tcp_frame(cl, gw, 40005, LISTEN_PORT, SYN, 0x0010, false)),
        Pass,
        "later fragment"
    );
    let mut udp = seg(40006, LISTEN_PORT, SYN);
    udp[14 + 9] = 17;
    assert_eq!(verdict(&udp), Pass, "UDP");
    let mut arp = seg(0, 0, 0);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(verdict(&arp), Pass, "ARP");
    assert_eq!(
        verdict(&seg(40007, UNLISTENED_PORT, SYN)),
        Pass,
        "no listener"
    );
    assert_eq!(verdict(&seg(40007, 9, SYN)), Pass, "port not in ports");
    // No socket on the queue: the XDP_PASS fallback of bpf_redirect_map.
    maps.remove_xsk(0).unwrap();
    assert_eq!(
        verdict(&seg(40008, LISTEN_PORT, SYN)),
        Pass,
        "no AF_XDP socket"
    );
    assert!(
        maps.port_stats(LISTEN_PORT)
            .unwrap()
            .unwrap()
            .get(Stat::NoXsk)
            >= 1
    );
    maps.insert_xsk(0, xsks[0].raw_fd()).unwrap();
    // DRAINING
    maps.set_port_state(LISTEN_PORT, PortState::Draining)
        .unwrap();
    assert_eq!(
        verdict(&seg(40009, LISTEN_PORT, SYN)),
        Pass,
        "SYN while draining"
    );
    assert_eq!(
        verdict(&seg(40009, LISTEN_PORT, ACK)),
        Redirect,
        "cookie ACK while draining"
    );
    assert_eq!(
        verdict(&seg(held_port, LISTEN_PORT, ACK)),
        Pass,
        "kernel-owned, draining"
    );
    // OFF
    maps.set_port_state(LISTEN_PORT, PortState::Off).unwrap();
    assert_eq!(
        verdict(&seg(40010, LISTEN_PORT, SYN)),
        Pass,
        "SYN while off"
    );
    assert_eq!(
        verdict(&seg(40010, LISTEN_PORT, ACK)),
        Pass,
        "ACK while off"
    );
    let flow = FlowKey::new_v4(
        SocketAddrV4::new(Ipv4Addr::from(gw), LISTEN_PORT),
        SocketAddrV4::new(Ipv4Addr::from(cl), 40010),
    );
    maps.add_user_flow(flow, 0).unwrap();
    assert_eq!(
        verdict(&seg(40010, LISTEN_PORT, ACK)),
        Redirect,
        "user flow while off"
    );
    maps.remove_user_flow(flow).unwrap();
    assert_eq!(
        verdict(&seg(40010, LISTEN_PORT, ACK)),
        Pass,
        "user flow removed"
    );
    drop(held_in);

    // ARP/ICMP again with a port ON.
    maps.set_port_state(LISTEN_PORT, PortState::On).unwrap();
    run(&[
        "ip",
        "-n",
        &topo.client_ns,
        "neigh",
        "flush",
        "dev",
        &topo.client_if,
    ]);
    assert!(topo.ping(), "ping with bypass on");
    assert!(maps.global_stats().unwrap().get(Stat::NotTcp) >= 1);

    // A second gateway on the same interface is refused (it would unpin our maps).
    match Steering::load(&config) {
        Err(SteeringError::AlreadyRunning { .. }) => {}
        other => panic!("second load on {}: {other:?}", topo.server_if),
    }

    // Fail-safe: closing the AF_XDP sockets empties xsks, so with the port still ON new
    // connections fall back to the kernel listener.
    let no_xsk_before = maps
        .port_stats(LISTEN_PORT)
        .unwrap()
        .unwrap()
        .get(Stat::NoXsk);
    drop(xsks);
    assert_eq!(
        steering
            .test_run_xdp(&seg(40011, LISTEN_PORT, SYN))
            .unwrap(),
        Pass,
        "SYN with no AF_XDP socket left"
    );
    let accepted_before = accepts.total();
    assert!(
        topo.client_connect(LISTEN_PORT, None, 2),
        "no kernel fallback once the sockets are gone"
    );
    wait_for("fallback accept", Duration::from_secs(3), || {
        accepts.total() > accepted_before
    });
    assert!(
        maps.port_stats(LISTEN_PORT)
            .unwrap()
            .unwrap()
            .get(Stat::NoXsk)
            > no_xsk_before
    );

    // The listener's close removes its tag (sock_ops STATE_CB).
    topo.stop_child(listener);
    wait_for("tag removal", Duration::from_secs(5), || {
        maps.listener(LISTEN_PORT).unwrap().is_none()
    });

    // Teardown: links and pins go with Steering; no XDP program is left on the interface.
    drop(steering);
    assert!(
        !pin_dir.exists(),
        "pins left behind in {}",
        pin_dir.display()
    );
    let link = topo.gw_link();
    assert!(!link.contains("xdp"), "XDP still attached: {link}");
    assert!(topo.leave_gateway(), "setns back to the test's netns");
    drop(topo);
}

#[test]
fn steering_native_or_fallback() {
    scenario(XdpMode::Auto);
}

#[test]
fn steering_generic() {
    scenario(XdpMode::Generic);
}

/// Not a test on its own: the gateway stand-in that `gateway_killed_falls_back_to_kernel`
/// runs in a child process (this binary, `--ignored --exact`) and kills with SIGKILL. It
/// enters the netns named by `XGT_HELPER_NS`, loads steering on `XGT_HELPER_IF` with the cgroup
/// `XGT_HELPER_CGROUP`, opens its AF_XDP sockets, turns `LISTEN_PORT` on, prints `ready` and
/// waits to be killed. Does nothing when those variables are not set.
#[test]
#[ignore = "helper process for gateway_killed_falls_back_to_kernel"]
fn helper_hold_steering() {
    let (Ok(ns), Ok(ifname), Ok(cgroup)) = (
        std::env::var("XGT_HELPER_NS"),
        std::env::var("XGT_HELPER_IF"),
        std::env::var("XGT_HELPER_CGROUP"),
    ) else {
        return;
    };
    let gw = File::open(format!("/var/run/netns/{ns}")).expect("gateway netns");
    // SAFETY: setns on a fd we hold; CLONE_NEWNET only changes this thread's namespace.
    assert_eq!(
        unsafe { libc::setns(gw.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    let steering = Steering::load(&SteeringConfig::new(ifname.clone(), cgroup)).unwrap();
    let queues = rx_queue_count(&ifname).unwrap();
    let _xsks: Vec<XskQueue> = (0..queues)
        .map(|q| XskQueue::open(&XskConfig::new(ifname.clone()), q, steering.maps()).unwrap())
        .collect();
    steering
        .maps()
        .set_port_state(LISTEN_PORT, PortState::On)
        .unwrap();
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The fail-safe of docs/steering.md ("If the gateway dies"): SIGKILL the process that holds
/// the steering and new connections reach the kernel with nobody touching anything; the next
/// start takes over the interface, replacing the dead one's pins.
#[test]
fn gateway_killed_falls_back_to_kernel() {
    if !is_root() {
        eprintln!("SKIPPED: the steering test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let mut topo = Topology::create();
    let mut gateway = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_hold_steering",
            "--nocapture",
        ])
        .env("XGT_HELPER_NS", &topo.server_ns)
        .env("XGT_HELPER_IF", &topo.server_if)
        .env("XGT_HELPER_CGROUP", &topo.cgroup)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the gateway stand-in");
    let out = lines_of(gateway.stdout.take().unwrap());
    topo.children.push(gateway);
    let gateway_idx = topo.children.len() - 1;
    let start = Instant::now();
    loop {
        let line = out
            .recv_timeout(Duration::from_secs(20))
            .expect("the gateway stand-in did not get ready");
        if line == "ready" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    let pin_dir = PathBuf::from(dataplane::bpf::PIN_ROOT).join(&topo.server_if);
    let (_listener, lines) = topo.start_listener(LISTEN_PORT);
    let mut accepts = Accepts { lines, seen: 0 };
    let maps = dataplane::bpf::SteeringMaps::open_pinned(&pin_dir).expect("pinned maps");
    wait_for("listener tag", Duration::from_secs(5), || {
        maps.listener(LISTEN_PORT).unwrap().is_some()
    });
    // Steered into sockets nobody reads: the connect times out.
    assert!(!topo.client_connect(LISTEN_PORT, None, 1));
    assert_eq!(accepts.total(), 0);
    assert!(
        maps.port_stats(LISTEN_PORT)
            .unwrap()
            .unwrap()
            .get(Stat::SynSteered)
            >= 1
    );

    topo.stop_child(gateway_idx); // SIGKILL, by PID
    let link = topo.gw_link();
    assert!(
        !link.contains("xdp"),
        "XDP still attached after the gateway died"
    );
    assert!(
        topo.client_connect(LISTEN_PORT, None, 2),
        "black-holed after kill -9"
    );
    wait_for("kernel accept", Duration::from_secs(3), || {
        accepts.total() >= 1
    });
    assert!(pin_dir.join("ports").exists(), "the dead gateway's pins");

    // A new gateway takes over: lock free, stale pins replaced by fresh maps.
    drop(maps);
    topo.enter_gateway();
    let steering = Steering::load(&SteeringConfig::new(
        topo.server_if.clone(),
        topo.cgroup.clone(),
    ))
    .expect("restart after kill -9");
    assert_eq!(steering.maps().port_state(LISTEN_PORT).unwrap(), None);
    assert!(steering.maps().user_flows().is_empty());
    drop(steering);
    assert!(!pin_dir.exists());
    assert!(topo.leave_gateway());
}

// IPv6 and ICMP (docs/steering.md rules 1 and 1a): the same veth, IPv6 addresses added to
// both ends.

/// A port with a dual-stack kernel listener (`[::]`, IPV6_V6ONLY=0).
const DUAL_PORT: u16 = 18083;
/// A port with a v6-only kernel listener.
const V6ONLY_PORT: u16 = 18084;
const GW_IP6: &str = "fd00:77::1";
const CLIENT_IP6: &str = "fd00:77::2";

const NH_HOP_BY_HOP: u8 = 0;
const NH_TCP: u8 = 6;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_ICMPV6: u8 = 58;
const NH_DEST_OPTS: u8 = 60;
/// Not an extension header the walk knows, nor TCP (RFC 3692's experimental value).
const NH_EXPERIMENTAL: u8 = 253;

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

/// Ethernet header (with one 802.1Q tag when `vlan`) carrying `ethertype`.
fn eth_header(ethertype: u16, vlan: bool) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A 20-byte TCP header, checksum zero (XDP does not look at it).
fn tcp_header(sport: u16, dport: u16, flags: u8) -> [u8; 20] {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp
}

/// An IPv6 packet: the fixed header (Next Header `first`), then `ext` (extension headers, or
/// nothing) and `upper`.
fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, first: u8, ext: &[u8], upper: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(
        &u16::try_from(ext.len() + upper.len())
            .unwrap()
            .to_be_bytes(),
    );
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(ext);
    p.extend_from_slice(upper);
    p
}

/// An extension header with the common layout (Next Header, Hdr Ext Len, `body`); `body` is
/// 6 bytes plus a multiple of 8.
fn ext_header(next: u8, body: &[u8]) -> Vec<u8> {
    assert_eq!(
        (body.len() + 2) % 8,
        0,
        "extension header of {} bytes",
        body.len() + 2
    );
    let mut h = vec![next, u8::try_from((body.len() + 2) / 8 - 1).unwrap()];
    h.extend_from_slice(body);
    h
}

/// Ethernet (optionally 802.1Q) / IPv6 / `ext` / TCP, `first` the fixed header's Next Header.
#[allow(clippy::too_many_arguments)]
fn tcp6_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    first: u8,
    ext: &[u8],
    vlan: bool,
) -> Vec<u8> {
    let mut f = eth_header(0x86dd, vlan);
    f.extend_from_slice(&ipv6_packet(
        src,
        dst,
        first,
        ext,
        &tcp_header(sport, dport, flags),
    ));
    f
}

/// Ethernet / IPv4 / ICMP `kind`.`code` from the client to the gateway, quoting the IPv4
/// header and the first 8 TCP bytes of a segment from `local` to `remote` (one the gateway
/// sent); both checksums.
fn icmp4_frame(kind: u8, code: u8, local: SocketAddrV4, remote: SocketAddrV4) -> Vec<u8> {
    let sent = tcp_frame(
        local.ip().octets(),
        remote.ip().octets(),
        local.port(),
        remote.port(),
        ACK,
        0x4000, // DF
        false,
    );
    let mut icmp = vec![kind, code, 0, 0, 0, 0];
    icmp.extend_from_slice(&1400u16.to_be_bytes()); // next-hop MTU
    icmp.extend_from_slice(&sent[14..14 + 20 + 8]);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let cl: Ipv4Addr = CLIENT_IP.parse().unwrap();
    let gw: Ipv4Addr = GW_IP.parse().unwrap();
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&u16::try_from(20 + icmp.len()).unwrap().to_be_bytes());
    ip[8] = 64;
    ip[9] = 1;
    ip[12..16].copy_from_slice(&cl.octets());
    ip[16..20].copy_from_slice(&gw.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = eth_header(0x0800, false);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// Ethernet / IPv6 (`ext` after the fixed header, `first` its Next Header) / ICMPv6
/// `kind`.`code` from `src` to `dst`, its 4-byte field `field` and then `body`; checksum
/// zero (what reaches the AF_XDP socket is not checked on the way).
#[allow(clippy::too_many_arguments)]
fn icmp6_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    first: u8,
    ext: &[u8],
    kind: u8,
    code: u8,
    field: u32,
    body: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![kind, code, 0, 0];
    icmp.extend_from_slice(&field.to_be_bytes());
    icmp.extend_from_slice(body);
    let mut f = eth_header(0x86dd, false);
    f.extend_from_slice(&ipv6_packet(src, dst, first, ext, &icmp));
    f
}

/// The IPv6 packet of a TCP segment from `local` to `remote` (one the gateway sent), whole
/// header and no payload: what a "packet too big" quotes of it.
fn sent6(local: SocketAddrV6, remote: SocketAddrV6, next: u8) -> Vec<u8> {
    ipv6_packet(
        *local.ip(),
        *remote.ip(),
        next,
        &[],
        &tcp_header(local.port(), remote.port(), ACK),
    )
}

/// What a drained frame is, for the IPv6/ICMP test: (IP version, protocol, destination port
/// of TCP or ICMP type, TCP flags). Extension headers are not walked.
fn frame_summary(f: &[u8]) -> Option<(u8, u8, u16, u8)> {
    match f.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(f.get(14)? & 0x0f) * 4;
            let proto = *f.get(23)?;
            let l4 = f.get(14 + ihl..)?;
            match proto {
                6 => Some((4, 6, u16::from_be_bytes([l4[2], l4[3]]), l4[13])),
                1 => Some((4, 1, u16::from(*l4.first()?), 0)),
                _ => None,
            }
        }
        [0x86, 0xdd] => {
            let next = *f.get(14 + 6)?;
            let l4 = f.get(14 + 40..)?;
            match next {
                NH_TCP => Some((6, 6, u16::from_be_bytes([l4[2], l4[3]]), *l4.get(13)?)),
                NH_ICMPV6 => Some((6, NH_ICMPV6, u16::from(*l4.first()?), 0)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Drains the sockets for `dur`, returning the summary of every frame seen.
fn drain_summaries(xsks: &mut [XskQueue], dur: Duration) -> Vec<(u8, u8, u16, u8)> {
    let mut seen = Vec::new();
    let start = Instant::now();
    while start.elapsed() < dur {
        let mut got = 0;
        for q in xsks.iter_mut() {
            got += q.recv_batch(64, |f| seen.extend(frame_summary(f)));
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    seen
}

/// An AF_INET6 kernel listener (dual-stack unless `v6only`) inside the test cgroup and the
/// gateway netns, echoing what it reads; returns its output lines ("listening", "accepted
/// <port>").
fn start_listener6(topo: &mut Topology, port: u16, v6only: bool) -> Receiver<String> {
    let script = r#"
import socket, sys, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(sys.argv[2]))
s.bind(("::", int(sys.argv[1])))
s.listen(64)
print("listening", flush=True)
def echo(c):
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, a = s.accept()
    print("accepted", a[1], flush=True)
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"#;
    let shell = format!(
        "echo $$ > {} && exec ip netns exec {} /usr/bin/python3 -u -c \"$0\" {port} {}",
        topo.cgroup.join("cgroup.procs").display(),
        topo.server_ns,
        u8::from(v6only),
    );
    let mut child = Command::new("sh")
        .args(["-c", &shell, script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the IPv6 listener");
    let rx = lines_of(child.stdout.take().expect("piped stdout"));
    topo.children.push(child);
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("IPv6 listener did not start");
    assert_eq!(line, "listening");
    rx
}

/// A connect from the client netns to `[GW_IP6]:port` within `timeout_secs`; its output says
/// `connected` or `error <errno name>`. Exits on its own within the timeout.
fn spawn_connect6(topo: &Topology, port: u16, timeout_secs: u32) -> std::process::Child {
    let script = r#"
import errno, socket, sys
s = socket.socket(socket.AF_INET6)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except socket.timeout:
    print("error ETIMEDOUT", flush=True)
    sys.exit(1)
except OSError as e:
    print("error", errno.errorcode.get(e.errno, e.errno), flush=True)
    sys.exit(1)
print("connected", flush=True)
s.close()
"#;
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .args([GW_IP6, &port.to_string(), &timeout_secs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the IPv6 client")
}

/// An IPv6 client that connects once and then echoes each line written to its stdin through
/// the connection; returns its stdin, its output lines and its local port.
fn held_client6(topo: &mut Topology, port: u16) -> (ChildStdin, Receiver<String>, u16) {
    let (_, stdin, rx, local_port) = topo.held_client_to(GW_IP6, port);
    (stdin, rx, local_port)
}

/// `ping -6` of the gateway from the client: neighbour discovery and echo through XDP.
fn ping6(topo: &Topology) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "ping",
            "-6",
            "-c",
            "2",
            "-i",
            "0.2",
        ])
        .args(["-W", "1", GW_IP6])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Steering of IPv6 TCP by the rules IPv4 has, the extension headers it looks through and
/// those it passes, sock_ops' tags of AF_INET6 listeners, and ICMP "fragmentation needed" /
/// ICMPv6 "packet too big" reaching the bypass connection they are about.
#[test]
fn steering_ipv6_and_icmp() {
    ipv6_and_icmp_scenario(XdpMode::Auto);
}

#[test]
fn steering_ipv6_and_icmp_generic() {
    ipv6_and_icmp_scenario(XdpMode::Generic);
}

fn ipv6_and_icmp_scenario(mode: XdpMode) {
    if !is_root() {
        eprintln!("SKIPPED: the steering test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let mut topo = Topology::create();
    for (ns, ifname, addr) in [
        (&topo.server_ns, &topo.server_if, GW_IP6),
        (&topo.client_ns, &topo.client_if, CLIENT_IP6),
    ] {
        let cidr = format!("{addr}/64");
        run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", ifname, "nodad"]);
    }
    let gw6: Ipv6Addr = GW_IP6.parse().unwrap();
    let cl6: Ipv6Addr = CLIENT_IP6.parse().unwrap();
    let gw4: Ipv4Addr = GW_IP.parse().unwrap();
    let cl4: Ipv4Addr = CLIENT_IP.parse().unwrap();

    topo.enter_gateway();
    let mut config = SteeringConfig::new(topo.server_if.clone(), topo.cgroup.clone());
    config.xdp_mode = mode;
    let steering = Steering::load(&config).expect("loading steering");
    eprintln!(
        "XDP attached {:?} on {}",
        steering.attached_mode(),
        topo.server_if
    );
    let maps = steering.maps();
    let queues = rx_queue_count(&topo.server_if).expect("channel count");
    let xsk_config = XskConfig::new(topo.server_if.clone());
    let mut xsks: Vec<XskQueue> = (0..queues)
        .map(|q| XskQueue::open(&xsk_config, q, maps).expect("AF_XDP socket"))
        .collect();

    // sock_ops tags AF_INET6 listeners, dual-stack and v6-only alike, and records the family.
    let (_v4_listener, _v4_lines) = topo.start_listener(LISTEN_PORT);
    let dual_lines = start_listener6(&mut topo, DUAL_PORT, false);
    let _v6only_lines = start_listener6(&mut topo, V6ONLY_PORT, true);
    let mut dual = Accepts {
        lines: dual_lines,
        seen: 0,
    };
    for port in [LISTEN_PORT, DUAL_PORT, V6ONLY_PORT] {
        wait_for("listener tag", Duration::from_secs(5), || {
            maps.listener(port).unwrap().is_some()
        });
    }
    let family = |port| maps.listener(port).unwrap().unwrap().family;
    assert_eq!(family(LISTEN_PORT), AF_INET);
    assert_eq!(family(DUAL_PORT), AF_INET6, "dual-stack listener");
    assert_eq!(family(V6ONLY_PORT), AF_INET6, "v6-only listener");

    // Neighbour discovery and echo pass: ping6 works with the program attached.
    assert!(ping6(&topo), "ping6 through the XDP program");

    // Rule 4, real traffic: an IPv6 SYN to a port that is on reaches the AF_XDP socket, not
    // the kernel listener, and is counted as IPv6.
    maps.set_port_state(DUAL_PORT, PortState::On).unwrap();
    let client = spawn_connect6(&topo, DUAL_PORT, 1);
    let out = client.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(said, "error ETIMEDOUT", "the steered SYN was answered");
    let seen = drain_summaries(&mut xsks, Duration::from_millis(200));
    assert!(
        seen.iter()
            .any(|&(v, p, port, f)| (v, p, port) == (6, 6, DUAL_PORT) && f & SYN != 0),
        "no IPv6 SYN on the AF_XDP socket: {seen:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        dual.total(),
        0,
        "kernel listener accepted a steered IPv6 connection"
    );
    let st = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert!(st.get(Stat::SynSteered) >= 1);
    assert!(st.get(Stat::RedirectedV6) >= 1);
    assert_eq!(st.get(Stat::RedirectedV6), st.get(Stat::Redirected));

    // Port off: the kernel's dual-stack listener takes the IPv6 connection; held open, it
    // stays with the kernel when the port is switched on (rule 3, the IPv6 socket lookup).
    maps.set_port_state(DUAL_PORT, PortState::Off).unwrap();
    let (mut held_in, held_out, held_port) = held_client6(&mut topo, DUAL_PORT);
    wait_for("kernel accept over IPv6", Duration::from_secs(3), || {
        dual.total() >= 1
    });
    maps.set_port_state(DUAL_PORT, PortState::On).unwrap();
    let before = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    writeln!(held_in, "hello6").unwrap();
    let reply = held_out
        .recv_timeout(Duration::from_secs(3))
        .expect("no echo through the kernel after switching on");
    assert_eq!(reply, "echo hello6");
    let after = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert!(after.get(Stat::KernelOwned) > before.get(Stat::KernelOwned));
    assert_eq!(after.get(Stat::Redirected), before.get(Stat::Redirected));

    // The rules on crafted frames (BPF_PROG_TEST_RUN, this netns, RX queue 0).
    let verdict = |frame: &[u8]| steering.test_run_xdp(frame).unwrap();
    use XdpVerdict::{Pass, Redirect};
    let seg6 = |sport: u16, dport: u16, flags: u8| {
        tcp6_frame(cl6, gw6, sport, dport, flags, NH_TCP, &[], false)
    };
    let behind = |first: u8, ext: &[u8]| {
        verdict(&tcp6_frame(
            cl6, gw6, 41000, DUAL_PORT, SYN, first, ext, false,
        ))
    };
    let pad = |next: u8| ext_header(next, &[1, 4, 0, 0, 0, 0]); // one PadN
    let routing = |next: u8, left: u8| ext_header(next, &[0, left, 0, 0, 0, 0]);
    let not_tcp_before = maps.global_stats().unwrap().get(Stat::NotTcp);

    assert_eq!(
        verdict(&seg6(held_port, DUAL_PORT, ACK)),
        Pass,
        "kernel-owned ACK"
    );
    assert_eq!(
        verdict(&seg6(41001, DUAL_PORT, ACK)),
        Redirect,
        "unknown-flow ACK"
    );
    let before = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert_eq!(verdict(&seg6(41002, DUAL_PORT, SYN)), Redirect, "pure SYN");
    let after = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    for stat in [Stat::Redirected, Stat::RedirectedV6, Stat::SynSteered] {
        assert_eq!(after.get(stat), before.get(stat) + 1, "{stat:?}");
    }
    assert_eq!(verdict(&seg6(41002, DUAL_PORT, SYN | FIN)), Pass, "SYN|FIN");
    assert_eq!(
        verdict(&tcp6_frame(
            cl6,
            gw6,
            41003,
            DUAL_PORT,
            SYN,
            NH_TCP,
            &[],
            true
        )),
        Redirect,
        "802.1Q-tagged IPv6 SYN"
    );
    // An IPv4 SYN to the dual-stack listener's port is steered, and not counted as IPv6.
    let before = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert_eq!(
        verdict(&tcp_frame(
            cl4.octets(),
            gw4.octets(),
            41004,
            DUAL_PORT,
            SYN,
            0,
            false
        )),
        Redirect,
        "IPv4 SYN, dual-stack listener"
    );
    let after = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert_eq!(
        after.get(Stat::Redirected),
        before.get(Stat::Redirected) + 1
    );
    assert_eq!(
        after.get(Stat::RedirectedV6),
        before.get(Stat::RedirectedV6)
    );
    // The v6-only listener's port is steered over IPv6; an AF_INET listener's port is not.
    maps.set_port_state(V6ONLY_PORT, PortState::On).unwrap();
    assert_eq!(
        verdict(&seg6(41005, V6ONLY_PORT, SYN)),
        Redirect,
        "v6-only listener"
    );
    maps.set_port_state(LISTEN_PORT, PortState::On).unwrap();
    assert_eq!(
        verdict(&seg6(41006, LISTEN_PORT, SYN)),
        Pass,
        "AF_INET listener"
    );
    assert_eq!(
        verdict(&tcp_frame(
            cl4.octets(),
            gw4.octets(),
            41006,
            LISTEN_PORT,
            SYN,
            0,
            false
        )),
        Redirect,
        "IPv4 SYN, AF_INET listener"
    );
    assert_eq!(
        verdict(&seg6(41007, UNLISTENED_PORT, SYN)),
        Pass,
        "no listener"
    );

    // Extension headers: looked through (at most 4, of the kinds the engine accepts), or the
    // packet passes.
    assert_eq!(
        behind(NH_HOP_BY_HOP, &pad(NH_TCP)),
        Redirect,
        "Hop-by-Hop, PadN"
    );
    let pad1s = ext_header(NH_TCP, &[0; 6]);
    assert_eq!(
        behind(NH_HOP_BY_HOP, &pad1s),
        Redirect,
        "Hop-by-Hop, six Pad1"
    );
    let router_alert = ext_header(NH_TCP, &[0x05, 2, 0, 0, 0, 0]); // type 5 may be skipped
    assert_eq!(
        behind(NH_HOP_BY_HOP, &router_alert),
        Redirect,
        "Hop-by-Hop, Router Alert"
    );
    let discard = ext_header(NH_TCP, &[0xc2, 4, 0, 0, 0, 0]); // Jumbo Payload: discard
    assert_eq!(
        behind(NH_DEST_OPTS, &discard),
        Pass,
        "an option asking for a discard"
    );
    let overrun = ext_header(NH_TCP, &[1, 5, 0, 0, 0, 0]); // PadN past the header
    assert_eq!(
        behind(NH_DEST_OPTS, &overrun),
        Pass,
        "options running past the header"
    );
    assert_eq!(
        behind(NH_ROUTING, &routing(NH_TCP, 0)),
        Redirect,
        "Routing, 0 left"
    );
    assert_eq!(
        behind(NH_ROUTING, &routing(NH_TCP, 1)),
        Pass,
        "Routing, segments left"
    );
    let four = [
        pad(NH_DEST_OPTS),
        pad(NH_ROUTING),
        routing(NH_DEST_OPTS, 0),
        pad(NH_TCP),
    ]
    .concat();
    assert_eq!(
        behind(NH_HOP_BY_HOP, &four),
        Redirect,
        "four extension headers"
    );
    let five = [
        pad(NH_DEST_OPTS),
        pad(NH_ROUTING),
        routing(NH_DEST_OPTS, 0),
        pad(NH_DEST_OPTS),
        pad(NH_TCP),
    ]
    .concat();
    assert_eq!(behind(NH_HOP_BY_HOP, &five), Pass, "five extension headers");
    let late_hbh = [pad(NH_HOP_BY_HOP), pad(NH_TCP)].concat();
    assert_eq!(
        behind(NH_DEST_OPTS, &late_hbh),
        Pass,
        "Hop-by-Hop not first"
    );
    let fragment = |offset_m: u16| {
        let mut h = vec![NH_TCP, 0];
        h.extend_from_slice(&offset_m.to_be_bytes());
        h.extend_from_slice(&7u32.to_be_bytes());
        h
    };
    assert_eq!(behind(NH_FRAGMENT, &fragment(1)), Pass, "first fragment");
    assert_eq!(behind(NH_FRAGMENT, &fragment(0)), Pass, "atomic fragment");
    let frag_behind_hbh = [pad(NH_FRAGMENT), fragment(0)].concat();
    assert_eq!(
        behind(NH_HOP_BY_HOP, &frag_behind_hbh),
        Pass,
        "fragment after Hop-by-Hop"
    );
    assert_eq!(
        behind(NH_EXPERIMENTAL, &pad(NH_TCP)),
        Pass,
        "unknown extension header"
    );
    assert_eq!(behind(59, &[]), Pass, "No Next Header");
    let udp = ipv6_packet(cl6, gw6, 17, &[], &[0x9c, 0x40, 0x46, 0xa3, 0, 8, 0, 0]);
    assert_eq!(
        verdict(&[eth_header(0x86dd, false), udp].concat()),
        Pass,
        "UDP"
    );
    let mapped = cl4.to_ipv6_mapped();
    assert_eq!(
        verdict(&tcp6_frame(
            mapped,
            gw6,
            41008,
            DUAL_PORT,
            SYN,
            NH_TCP,
            &[],
            false
        )),
        Pass,
        "IPv4-mapped source"
    );
    // Neighbour solicitation (to the solicited-node group) and echo request: the kernel's.
    let mut ns_body = vec![0; 4];
    ns_body.extend_from_slice(&gw6.octets());
    ns_body.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 2]);
    let solicited: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    assert_eq!(
        verdict(&icmp6_frame(
            cl6,
            solicited,
            NH_ICMPV6,
            &[],
            135,
            0,
            0,
            &ns_body
        )),
        Pass,
        "neighbour solicitation"
    );
    assert_eq!(
        verdict(&icmp6_frame(
            cl6,
            gw6,
            NH_ICMPV6,
            &[],
            128,
            0,
            0x0001_0001,
            b"ping"
        )),
        Pass,
        "echo request"
    );
    assert!(maps.global_stats().unwrap().get(Stat::NotTcp) > not_tcp_before);

    // Rule 2 over IPv6: a user_flows entry steers its segments whatever the port's state.
    let local6 = SocketAddrV6::new(gw6, DUAL_PORT, 0, 0);
    let remote6 = SocketAddrV6::new(cl6, 41010, 0, 0);
    let flow6 = FlowKey::new_v6(local6, remote6);
    for state in [PortState::Off, PortState::Draining, PortState::On] {
        maps.set_port_state(DUAL_PORT, state).unwrap();
        maps.add_user_flow(flow6, 0).unwrap();
        assert!(maps.has_user_flow(flow6).unwrap());
        let before = maps.port_stats(DUAL_PORT).unwrap().unwrap();
        assert_eq!(
            verdict(&seg6(41010, DUAL_PORT, ACK)),
            Redirect,
            "user flow, {state:?}"
        );
        assert_eq!(
            verdict(&seg6(41010, DUAL_PORT, SYN)),
            Redirect,
            "user flow SYN, {state:?}"
        );
        let after = maps.port_stats(DUAL_PORT).unwrap().unwrap();
        assert_eq!(after.get(Stat::UserFlow), before.get(Stat::UserFlow) + 2);
        assert_eq!(
            after.get(Stat::RedirectedV6),
            before.get(Stat::RedirectedV6) + 2
        );
        maps.remove_user_flow(flow6).unwrap();
    }
    maps.set_port_state(DUAL_PORT, PortState::Off).unwrap();
    assert_eq!(
        verdict(&seg6(41010, DUAL_PORT, ACK)),
        Pass,
        "user flow removed"
    );
    // The IPv4 flow of the same ports is another key.
    let flow4 = FlowKey::new_v4(
        SocketAddrV4::new(gw4, DUAL_PORT),
        SocketAddrV4::new(cl4, 41010),
    );
    maps.add_user_flow(flow4, 0).unwrap();
    assert_eq!(maps.user_flows(), vec![flow4]);
    assert_eq!(
        verdict(&seg6(41010, DUAL_PORT, ACK)),
        Pass,
        "IPv6 segment, IPv4 user flow"
    );
    maps.add_user_flow(flow6, 0).unwrap();
    let mut both = maps.user_flows();
    both.sort_by_key(|f| f.is_ipv6());
    assert_eq!(both, vec![flow4, flow6]);
    let mapped_flow = FlowKey::new_v6(
        SocketAddrV6::new(gw4.to_ipv6_mapped(), DUAL_PORT, 0, 0),
        SocketAddrV6::new(cl4.to_ipv6_mapped(), 41010, 0, 0),
    );
    assert!(matches!(
        maps.add_user_flow(mapped_flow, 0),
        Err(SteeringError::Ipv4MappedFlow(_))
    ));
    assert!(!maps.has_user_flow(mapped_flow).unwrap());

    // Rule 1a: ICMP errors quoting a bypass connection's segment reach it, counted on its
    // local port; others pass. The port is off: only user_flows matters.
    let local4 = SocketAddrV4::new(gw4, DUAL_PORT);
    let remote4 = SocketAddrV4::new(cl4, 41010);
    let unknown4 = SocketAddrV4::new(cl4, 41011);
    let unknown6 = SocketAddrV6::new(cl6, 41011, 0, 0);
    let ptb = |local: SocketAddrV6, remote: SocketAddrV6, next: u8, kind: u8| {
        icmp6_frame(
            cl6,
            gw6,
            NH_ICMPV6,
            &[],
            kind,
            0,
            1280,
            &sent6(local, remote, next),
        )
    };
    let before = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert_eq!(
        verdict(&icmp4_frame(3, 4, local4, remote4)),
        Redirect,
        "frag needed"
    );
    let mid = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert_eq!(
        mid.get(Stat::IcmpSteered),
        before.get(Stat::IcmpSteered) + 1
    );
    assert_eq!(mid.get(Stat::Redirected), before.get(Stat::Redirected) + 1);
    assert_eq!(mid.get(Stat::RedirectedV6), before.get(Stat::RedirectedV6));
    assert_eq!(
        verdict(&ptb(local6, remote6, NH_TCP, 2)),
        Redirect,
        "packet too big"
    );
    let after = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert_eq!(after.get(Stat::IcmpSteered), mid.get(Stat::IcmpSteered) + 1);
    assert_eq!(after.get(Stat::Redirected), mid.get(Stat::Redirected) + 1);
    assert_eq!(
        after.get(Stat::RedirectedV6),
        mid.get(Stat::RedirectedV6) + 1
    );
    assert_eq!(after.get(Stat::UserFlow), before.get(Stat::UserFlow));
    let outer_dest_opts = icmp6_frame(
        cl6,
        gw6,
        NH_DEST_OPTS,
        &pad(NH_ICMPV6),
        2,
        0,
        1280,
        &sent6(local6, remote6, NH_TCP),
    );
    assert_eq!(
        verdict(&outer_dest_opts),
        Redirect,
        "packet too big behind Destination Options"
    );
    assert_eq!(
        verdict(&icmp4_frame(3, 4, local4, unknown4)),
        Pass,
        "frag needed, unknown flow"
    );
    assert_eq!(
        verdict(&ptb(local6, unknown6, NH_TCP, 2)),
        Pass,
        "too big, unknown flow"
    );
    assert_eq!(
        verdict(&icmp4_frame(3, 3, local4, remote4)),
        Pass,
        "port unreachable"
    );
    assert_eq!(
        verdict(&icmp4_frame(11, 0, local4, remote4)),
        Pass,
        "time exceeded"
    );
    assert_eq!(
        verdict(&ptb(local6, remote6, NH_TCP, 1)),
        Pass,
        "ICMPv6 unreachable"
    );
    assert_eq!(
        verdict(&ptb(local6, remote6, NH_DEST_OPTS, 2)),
        Pass,
        "quoted extension header"
    );
    // Quoting the segment the other way round (as if the client had sent it): no such flow.
    assert_eq!(
        verdict(&icmp4_frame(3, 4, remote4, local4)),
        Pass,
        "frag needed, reversed"
    );
    assert_eq!(
        verdict(&ptb(remote6, local6, NH_TCP, 2)),
        Pass,
        "too big, reversed"
    );
    let mapped_ptb = ptb(
        SocketAddrV6::new(gw4.to_ipv6_mapped(), DUAL_PORT, 0, 0),
        SocketAddrV6::new(cl4.to_ipv6_mapped(), 41010, 0, 0),
        NH_TCP,
        2,
    );
    assert_eq!(
        verdict(&mapped_ptb),
        Pass,
        "too big quoting IPv4-mapped addresses"
    );

    // Real traffic: the two errors sent by the client reach the AF_XDP socket.
    let wire = xgate_testnet::packet::PacketSocket::open(&topo.client_ns, &topo.client_if)
        .expect("AF_PACKET socket in the client netns");
    let client_mac = topo.client_mac().expect("client MAC");
    let gw_mac = topo.server_mac().expect("gateway MAC");
    let before = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    for mut frame in [
        icmp4_frame(3, 4, local4, remote4),
        ptb(local6, remote6, NH_TCP, 2),
    ] {
        frame[0..6].copy_from_slice(&gw_mac);
        frame[6..12].copy_from_slice(&client_mac);
        wire.send(&frame).expect("AF_PACKET send");
    }
    let seen = drain_summaries(&mut xsks, Duration::from_millis(300));
    assert!(
        seen.contains(&(4, 1, 3, 0)),
        "no frag needed on AF_XDP: {seen:?}"
    );
    assert!(
        seen.contains(&(6, NH_ICMPV6, 2, 0)),
        "no packet too big on AF_XDP: {seen:?}"
    );
    let after = maps.port_stats(DUAL_PORT).unwrap().unwrap();
    assert!(after.get(Stat::IcmpSteered) >= before.get(Stat::IcmpSteered) + 2);
    maps.remove_user_flow(flow4).unwrap();
    maps.remove_user_flow(flow6).unwrap();
    assert!(maps.user_flows().is_empty());

    // NDP and echo still pass with ports on.
    maps.set_port_state(DUAL_PORT, PortState::On).unwrap();
    run(&[
        "ip",
        "-n",
        &topo.client_ns,
        "-6",
        "neigh",
        "flush",
        "dev",
        &topo.client_if,
    ]);
    assert!(ping6(&topo), "ping6 with bypass on");

    drop(held_in);
    drop(xsks);
    drop(steering);
    assert!(topo.leave_gateway(), "setns back to the test's netns");
    drop(topo);
}
