//! The lab's link (issue 12): xgate on a TAP interface whose descriptor the test holds, so the
//! client is frames this process writes, with no second kernel network stack anywhere (on a
//! veth pair, the client's TCP receive runs inside the server's transmit). This test proves
//! the link works for both paths before any load runs over it: XDP attaches to the TAP in
//! native mode, the bypass answers a handshake and a `GET` written into the descriptor, and
//! the kernel path answers the same on its port.
//!
//! Root only (network namespace, /dev/net/tun, BPF). `cargo test -p dataplane --test tap_lab`.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::testkit::ScriptedClient;
use dataplane::wire::{EthernetAddress, IpPair, TcpFlags};
use xgate_testnet::tap::Tap;
use xgate_testnet::{is_root, run};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 234, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 234, 0, 2);
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0x0a, 0xea, 0x02];
const BYPASS_PORT: u16 = 18400;
const KERNEL_PORT: u16 = 18401;

/// The namespace, the TAP and the gateway, stopped (by PID) and removed however the test
/// ends, in that order: the gateway first, while its interface still exists.
struct Lab {
    ns: String,
    ifname: String,
    tap: Option<Tap>,
    gateway: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.gateway.take() {
            // SAFETY: kill(2) on the child this test started, by PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        drop(self.tap.take());
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = std::fs::remove_file(format!("/run/xgate/{}.lock", self.ifname));
    }
}

/// One handshake and one `GET /health` to `port`, as frames through the TAP; returns what the
/// server sent back on the connection (head and body).
fn get_health(tap: &Tap, tap_mac: [u8; 6], port: u16) -> Vec<u8> {
    let mut c = ScriptedClient::new(41000 + port % 1000, port, 0x1000_0000);
    c.addrs.eth_src = EthernetAddress(CLIENT_MAC);
    c.addrs.eth_dst = EthernetAddress(tap_mac);
    c.addrs.ip = IpPair::V4 {
        src: CLIENT,
        dst: SERVER,
    };
    let mut out = Vec::with_capacity(2048);
    let mut frame = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = |c: &mut ScriptedClient, mut sink: Option<&mut Vec<u8>>| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tap
            .recv(&mut frame, left)
            .expect("reading the TAP")
            .unwrap_or_else(|| panic!("port {port}: no answer within 10 s"));
        // The kernel also sends its own frames (IPv6 router solicitations, ...).
        if let Some(r) = c.receive(&frame[..n], sink.as_deref_mut()) {
            return r;
        }
    };

    let n = c.syn(&mut out, true);
    tap.send(&out[..n]).unwrap();
    let r = next(&mut c, None);
    assert!(
        r.flags.contains(TcpFlags::SYN | TcpFlags::ACK),
        "port {port}: SYN answered with {:?}",
        r.flags
    );
    let n = c.send(&mut out, b"GET /health HTTP/1.1\r\nHost: lab\r\n\r\n");
    tap.send(&out[..n]).unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\nok") {
        let r = next(&mut c, Some(&mut response));
        assert!(
            !r.flags.contains(TcpFlags::RST),
            "port {port}: reset after {:?}",
            String::from_utf8_lossy(&response)
        );
    }
    // Acknowledge the response so neither path retransmits it while the test checks.
    let n = c.send(&mut out, &[]);
    tap.send(&out[..n]).unwrap();
    response
}

#[test]
fn xgate_answers_a_client_that_holds_the_tap_on_both_paths() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let pid = std::process::id();
    let mut lab = Lab {
        ns: format!("xtl{pid}"),
        ifname: format!("xtl{pid}"),
        tap: None,
        gateway: None,
    };
    run(&["ip", "netns", "add", &lab.ns]).unwrap();
    run(&["ip", "-n", &lab.ns, "link", "set", "lo", "up"]).unwrap();
    let tap = lab
        .tap
        .insert(Tap::create(&lab.ns, &lab.ifname, SERVER, 24).unwrap());
    let tap_mac = tap.mac().unwrap();
    // The kernel path answers through the kernel's neighbour table; the bypass swaps the
    // request's addresses and needs none.
    let mac = CLIENT_MAC.map(|b| format!("{b:02x}")).join(":");
    run(&[
        "ip",
        "-n",
        &lab.ns,
        "neigh",
        "replace",
        &CLIENT.to_string(),
        "lladdr",
        &mac,
        "dev",
        &lab.ifname,
    ])
    .unwrap();

    let (bypass, kernel) = (BYPASS_PORT.to_string(), KERNEL_PORT.to_string());
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args(["run", "--iface", &lab.ifname, "--netns", &lab.ns])
        .args(["--port", &bypass, "--port", &kernel, "--bypass", &bypass])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xgate run");
    let mut stdout = BufReader::new(gateway.stdout.take().unwrap()).lines();
    lab.gateway = Some(gateway);
    let mut serving = String::new();
    for line in stdout.by_ref() {
        let line = line.expect("xgate's output");
        if line.starts_with("xgate: serving") {
            serving = line.clone();
        }
        if line.starts_with("xgate: ready") {
            break;
        }
    }
    // Keep reading, so the gateway's last lines at SIGTERM find a reader.
    std::thread::spawn(move || stdout.for_each(drop));
    assert!(
        serving.contains("XDP native"),
        "XDP must attach to the TAP in native mode: {serving:?}"
    );

    for port in [BYPASS_PORT, KERNEL_PORT] {
        let response = get_health(tap, tap_mac, port);
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "port {port}: {text}");
    }

    // Which path answered which port: the gateway's own counters (refreshed twice a second).
    let mut paths = String::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(600));
        let out = run(&[
            env!("CARGO_BIN_EXE_xgate"),
            "status",
            "--iface",
            &lab.ifname,
            "--json",
        ])
        .expect("xgate status");
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let requests = |port: u16, path: &str| {
            status["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"] == port)
                .map_or(0, |p| p[path]["requests"].as_u64().unwrap_or(0))
        };
        paths = format!(
            "bypass port: bypass {} kernel {}; kernel port: bypass {} kernel {}",
            requests(BYPASS_PORT, "bypass"),
            requests(BYPASS_PORT, "kernel"),
            requests(KERNEL_PORT, "bypass"),
            requests(KERNEL_PORT, "kernel")
        );
        if paths == "bypass port: bypass 1 kernel 0; kernel port: bypass 0 kernel 1" {
            return;
        }
    }
    panic!("each port must be answered by its own path: {paths}");
}
