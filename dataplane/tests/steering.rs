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

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dataplane::afxdp::{rx_queue_count, XskConfig, XskQueue};
use dataplane::bpf::{
    cgroup2_root, AttachedMode, PortState, Stat, Steering, SteeringConfig, XdpMode,
};

const GW_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const LISTEN_PORT: u16 = 18080;
const UNLISTENED_PORT: u16 = 18081;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &[&str]) -> std::process::Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Everything the test creates; dropping it removes all of it, panicking or not.
struct Topology {
    prefix: String,
    gw_ns: String,
    client_ns: String,
    gw_if: String,
    client_if: String,
    cgroup: PathBuf,
    netns_created: Vec<String>,
    cgroup_created: bool,
    children: Vec<Child>,
    /// The test thread's original netns while it sits in the gateway's.
    home_ns: Option<File>,
}

impl Topology {
    fn create() -> Topology {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("xgt{}x{n}", std::process::id());
        let mut t = Topology {
            gw_ns: format!("{prefix}g"),
            client_ns: format!("{prefix}c"),
            gw_if: format!("{prefix}g"),
            client_if: format!("{prefix}c"),
            cgroup: cgroup2_root().expect("cgroup v2").join(&prefix),
            prefix,
            netns_created: Vec::new(),
            cgroup_created: false,
            children: Vec::new(),
            home_ns: None,
        };
        assert!(t.gw_if.len() < 16, "interface name too long");
        for ns in [t.gw_ns.clone(), t.client_ns.clone()] {
            run(&["ip", "netns", "add", &ns]);
            t.netns_created.push(ns);
        }
        // Created directly inside the namespaces: nothing appears in the host's.
        run(&[
            "ip",
            "-n",
            &t.gw_ns,
            "link",
            "add",
            &t.gw_if,
            "type",
            "veth",
            "peer",
            "name",
            &t.client_if,
            "netns",
            &t.client_ns,
        ]);
        for (ns, ifname, ip) in [
            (&t.gw_ns, &t.gw_if, GW_IP),
            (&t.client_ns, &t.client_if, CLIENT_IP),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                ifname,
            ]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
        // AF_XDP sees what the client sends: no partial checksums, no super-segments.
        run(&[
            "ip",
            "netns",
            "exec",
            &t.client_ns,
            "ethtool",
            "-K",
            &t.client_if,
            "tx",
            "off",
            "tso",
            "off",
            "gso",
            "off",
        ]);
        fs::create_dir(&t.cgroup).expect("creating test cgroup");
        t.cgroup_created = true;
        eprintln!(
            "topology {}: netns, veths and cgroup {:?}",
            t.prefix, t.cgroup
        );
        t
    }

    /// Moves the calling thread into the gateway netns (until `leave_gateway`).
    fn enter_gateway(&mut self) {
        let home = File::open("/proc/thread-self/ns/net").expect("own netns");
        let gw = File::open(format!("/var/run/netns/{}", self.gw_ns)).expect("gateway netns");
        // SAFETY: setns on fds we hold; CLONE_NEWNET only changes this thread's namespace.
        let rc = unsafe { libc::setns(gw.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        self.home_ns = Some(home);
    }

    fn leave_gateway(&mut self) {
        if let Some(home) = self.home_ns.take() {
            // SAFETY: as in enter_gateway, with the fd of the thread's original namespace.
            let rc = unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns back: {}", std::io::Error::last_os_error());
        }
    }

    /// Starts a kernel TCP listener inside the test cgroup and the gateway netns; returns the
    /// index of the child and a channel of its output lines ("listening", "accepted <port>").
    fn start_listener(&mut self, port: u16) -> (usize, Receiver<String>) {
        let script = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
print("listening", flush=True)
while True:
    c, a = s.accept()
    print("accepted", a[1], flush=True)
    c.close()
"#;
        let procs = self.cgroup.join("cgroup.procs");
        let shell = format!(
            "echo $$ > {} && exec ip netns exec {} /usr/bin/python3 -u -c \"$0\" {port}",
            procs.display(),
            self.gw_ns
        );
        let mut child = Command::new("sh")
            .args(["-c", &shell, script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning listener");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("listener did not start");
        assert_eq!(line, "listening");
        self.children.push(child);
        (self.children.len() - 1, rx)
    }

    fn stop_child(&mut self, idx: usize) {
        let child = &mut self.children[idx];
        let _ = child.kill(); // by PID: the process we spawned
        let _ = child.wait();
    }

    /// A TCP connect from the client netns; true when it connected.
    fn client_connect(&self, port: u16, timeout_secs: u32) -> bool {
        let status = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--connect-timeout",
                &timeout_secs.to_string(),
                "--max-time",
                &(timeout_secs + 1).to_string(),
            ])
            .arg(format!("http://{GW_IP}:{port}/"))
            .status()
            .expect("running curl");
        // 7: refused, 28: timed out; anything else means the TCP connection was made (our
        // listener closes at once: empty reply 52, or a reset while receiving 56).
        eprintln!("curl to port {port}: {status}");
        !matches!(status.code(), Some(7) | Some(28) | None)
    }

    fn ping(&self) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                GW_IP,
            ])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.leave_gateway();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.netns_created.drain(..) {
            // Deleting a netns deletes the veth end inside it, and with it the pair.
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        if self.cgroup_created {
            // Empty now that the children are gone.
            for _ in 0..50 {
                if fs::remove_dir(&self.cgroup).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

fn accepted(rx: &Receiver<String>) -> usize {
    rx.try_iter().filter(|l| l.starts_with("accepted")).count()
}

fn scenario(mode: XdpMode) {
    if !is_root() {
        eprintln!("SKIPPED: the steering test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let mut topo = Topology::create();
    topo.enter_gateway();

    let mut config = SteeringConfig::new(topo.gw_if.clone(), topo.cgroup.clone());
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
        topo.gw_if
    );
    for name in ["xsks", "ports", "listeners", "user_flows", "stats"] {
        let meta = fs::metadata(pin_dir.join(name)).expect("pinned map");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
    }
    let maps = steering.maps();

    let queues = rx_queue_count(&topo.gw_if).expect("channel count");
    let xsk_config = XskConfig::new(topo.gw_if.clone());
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

    // Port ON: the SYN goes to AF_XDP, the kernel listener accepts nothing.
    maps.set_port_state(LISTEN_PORT, PortState::On).unwrap();
    assert!(
        !topo.client_connect(LISTEN_PORT, 1),
        "connected although steered"
    );
    let seen = drain(&mut xsks, Duration::from_millis(300));
    assert!(
        seen.iter()
            .any(|&(p, f)| p == LISTEN_PORT && f & SYN != 0 && f & ACK == 0),
        "no SYN on the AF_XDP socket: {seen:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        accepted(&lines),
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
        topo.client_connect(LISTEN_PORT, 2),
        "kernel path did not connect"
    );
    wait_for("kernel accept", Duration::from_secs(3), || {
        accepted(&lines) >= 1
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
    assert!(!topo.client_connect(UNLISTENED_PORT, 1));
    let seen = drain(&mut xsks, Duration::from_millis(200));
    assert!(
        !seen.iter().any(|&(p, _)| p == UNLISTENED_PORT),
        "unlistened port steered: {seen:?}"
    );
    let st = maps.port_stats(UNLISTENED_PORT).unwrap().unwrap();
    assert_eq!(st.get(Stat::Redirected), 0);
    assert!(st.get(Stat::Passed) >= 1);

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

    // The listener's close removes its tag (sock_ops STATE_CB).
    topo.stop_child(listener);
    wait_for("tag removal", Duration::from_secs(5), || {
        maps.listener(LISTEN_PORT).unwrap().is_none()
    });

    // Teardown: sockets, links, pins.
    drop(xsks);
    drop(steering);
    assert!(
        !pin_dir.exists(),
        "pins left behind in {}",
        pin_dir.display()
    );
    topo.leave_gateway();
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
