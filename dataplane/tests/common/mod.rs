//! Shared guards of the root-only end-to-end tests: an [`xgate_testnet::Topology`] (network
//! namespaces and a veth pair with unique names, always removed, also when the test panics)
//! plus what is the gateway's: a cgroup v2 for it, the pins, lock and state files a killed
//! gateway leaves behind, and small helpers to run clients inside the client namespace.
//!
//! Topology: netns `<p>s` holds veth `<p>s` (the gateway side, 10.77.0.1/30, two RX queues);
//! netns `<p>c` holds veth `<p>c` (the client, 10.77.0.2/30, checksum and segmentation
//! offloads off so that AF_XDP sees whole, checksummed frames). A test thread enters the
//! gateway netns to load programs and bind sockets there, and goes back before cleaning up.
#![allow(dead_code)] // each test binary uses its own subset

pub mod http_client;
pub mod log_capture;
pub mod raw;
pub mod status;
pub mod upstream;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dataplane::bpf::cgroup2_root;
pub use xgate_testnet::is_root;
use xgate_testnet::netns::NetnsGuard;
use xgate_testnet::TopologyConfig;

pub const GW_IP: &str = "10.77.0.1";
pub const CLIENT_IP: &str = "10.77.0.2";

/// Runs a command to completion; panics with its stderr when it fails.
pub fn run(cmd: &[&str]) -> std::process::Output {
    xgate_testnet::run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Everything the test creates; dropping it removes all of it, panicking or not. The
/// namespaces and veths through `Deref` (`server_ns`, `server_if`, `client_ns`, ...).
pub struct Topology {
    pub net: xgate_testnet::Topology,
    pub cgroup: PathBuf,
    pub cgroup_created: bool,
    pub children: Vec<Child>,
    /// The test thread, while it sits in the gateway's netns.
    in_gateway: Option<NetnsGuard>,
}

impl Deref for Topology {
    type Target = xgate_testnet::Topology;
    fn deref(&self) -> &Self::Target {
        &self.net
    }
}

impl Topology {
    /// The namespaces, the veth pair (two queues, the client's offloads off) and the test
    /// cgroup.
    pub fn create() -> Topology {
        Topology::create_with(false)
    }

    /// [`create`](Self::create), with the gateway's offloads off too when `gw_offloads_off`.
    pub fn create_with(gw_offloads_off: bool) -> Topology {
        let net = xgate_testnet::Topology::create(&TopologyConfig {
            tag: "xgt",
            server_ip: GW_IP.parse::<Ipv4Addr>().expect("GW_IP"),
            client_ip: CLIENT_IP.parse::<Ipv4Addr>().expect("CLIENT_IP"),
            queues: 2,
            server_offloads_off: gw_offloads_off,
            client_gro: false,
            threaded_napi: None,
        })
        .unwrap_or_else(|e| panic!("veth topology: {e}"));
        let mut t = Topology {
            cgroup: cgroup2_root().expect("cgroup v2").join(&net.name),
            net,
            cgroup_created: false,
            children: Vec::new(),
            in_gateway: None,
        };
        fs::create_dir(&t.cgroup).expect("creating test cgroup");
        t.cgroup_created = true;
        eprintln!(
            "topology {}: netns, veths and cgroup {:?}",
            t.name, t.cgroup
        );
        t
    }

    /// Moves the calling thread into the gateway netns (until `leave_gateway`).
    pub fn enter_gateway(&mut self) {
        let guard = self
            .net
            .enter_server()
            .unwrap_or_else(|e| panic!("setns into {}: {e}", self.server_ns));
        self.in_gateway = Some(guard);
    }

    /// Back to the thread's own netns; false if that failed (never panics: Drop calls it).
    pub fn leave_gateway(&mut self) -> bool {
        match self.in_gateway.take() {
            Some(guard) => guard.leave().is_ok(),
            None => true,
        }
    }

    /// Starts a kernel TCP listener inside the test cgroup and the gateway netns; returns the
    /// index of the child and a channel of its output lines ("listening", "accepted <port>").
    pub fn start_listener(&mut self, port: u16) -> (usize, Receiver<String>) {
        let procs = self.cgroup.join("cgroup.procs");
        self.spawn_listener(port, Some(procs))
    }

    /// [`start_listener`](Self::start_listener) in the cgroup the test runs in, not the
    /// gateway's: sock_ops must not tag it.
    pub fn start_listener_outside_cgroup(&mut self, port: u16) -> (usize, Receiver<String>) {
        self.spawn_listener(port, None)
    }

    fn spawn_listener(
        &mut self,
        port: u16,
        cgroup_procs: Option<PathBuf>,
    ) -> (usize, Receiver<String>) {
        let script = r#"
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
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
        let join = cgroup_procs
            .map(|procs| format!("echo $$ > {} && ", procs.display()))
            .unwrap_or_default();
        let shell = format!(
            "{join}exec ip netns exec {} /usr/bin/python3 -u -c \"$0\" {port}",
            self.server_ns
        );
        let mut child = Command::new("sh")
            .args(["-c", &shell, script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning listener");
        let rx = lines_of(child.stdout.take().expect("piped stdout"));
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("listener did not start");
        assert_eq!(line, "listening");
        self.children.push(child);
        (self.children.len() - 1, rx)
    }

    pub fn stop_child(&mut self, idx: usize) {
        let child = &mut self.children[idx];
        let _ = child.kill(); // by PID: the process we spawned
        let _ = child.wait();
    }

    /// A TCP connect from the client netns (from `local_port` when given); true when it
    /// connected within `timeout_secs`.
    pub fn client_connect(&self, port: u16, local_port: Option<u16>, timeout_secs: u32) -> bool {
        let status = self
            .spawn_connect(port, local_port, timeout_secs)
            .wait()
            .expect("waiting for the client");
        status.success()
    }

    /// Starts the connect client (see `client_connect`); its stdout says `connected` or
    /// `error <errno name>`. Not tracked in `children`: it exits on its own within the timeout.
    pub fn spawn_connect(&self, port: u16, local_port: Option<u16>, timeout_secs: u32) -> Child {
        let script = r#"
import errno, socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
if sys.argv[2] != "0":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
try:
    s.connect((sys.argv[1].split(":")[0], int(sys.argv[1].split(":")[1])))
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
                &self.client_ns,
                "/usr/bin/python3",
                "-c",
                script,
            ])
            .arg(format!("{GW_IP}:{port}"))
            .arg(local_port.unwrap_or(0).to_string())
            .arg(timeout_secs.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running the client")
    }

    /// A client in the client netns that connects once and then, for each line written to its
    /// stdin, sends it and prints `echo <reply>`. Returns the child index, its stdin, its output
    /// lines and its local port.
    pub fn held_client(&mut self, port: u16) -> (usize, ChildStdin, Receiver<String>, u16) {
        self.held_client_to(GW_IP, port)
    }

    /// [`held_client`](Self::held_client) to `host` (an IPv6 address of the gateway's, say).
    pub fn held_client_to(
        &mut self,
        host: &str,
        port: u16,
    ) -> (usize, ChildStdin, Receiver<String>, u16) {
        let script = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", s.getsockname()[1], flush=True)
for line in sys.stdin:
    s.sendall(line.strip().encode())
    print("echo", s.recv(4096).decode(), flush=True)
"#;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "/usr/bin/python3",
                "-u",
                "-c",
                script,
            ])
            .args([host, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning held client");
        let stdin = child.stdin.take().expect("piped stdin");
        let rx = lines_of(child.stdout.take().expect("piped stdout"));
        self.children.push(child);
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("held client did not connect");
        let local_port = line
            .strip_prefix("connected ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        (self.children.len() - 1, stdin, rx, local_port)
    }

    /// After a gateway was killed at `killed`: a new connection to `port` is refused at
    /// once (a RST from the kernel, nothing black-holed) and no XDP program is left on the
    /// gateway's veth.
    pub fn assert_refused_without_xdp(&self, port: u16, killed: Instant) {
        let mut client = self.spawn_connect(port, None, 3);
        let status = client.wait().expect("waiting for the client");
        let mut said = String::new();
        std::io::Read::read_to_string(&mut client.stdout.take().expect("piped stdout"), &mut said)
            .expect("reading the client");
        eprintln!(
            "connect {:?} after kill -9: {}",
            killed.elapsed(),
            said.trim()
        );
        assert!(!status.success());
        assert_eq!(
            said.trim(),
            "error ECONNREFUSED",
            "black-holed after kill -9"
        );
        let link = self.gw_link();
        assert!(
            !link.contains("xdp"),
            "XDP still attached after kill -9: {link}"
        );
    }

    /// `ip -d link show` of the gateway's veth: says `xdp` while a program is attached.
    pub fn gw_link(&self) -> String {
        let out = run(&[
            "ip",
            "-n",
            &self.server_ns,
            "-d",
            "link",
            "show",
            "dev",
            &self.server_if,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ping(&self) -> bool {
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
        let _ = self.leave_gateway();
        for child in &mut self.children {
            let _ = child.kill(); // by PID: the processes we spawned
            let _ = child.wait();
        }
        // Pins a killed gateway left behind (a live one removes its own).
        let _ = fs::remove_dir_all(format!("{}/{}", dataplane::bpf::PIN_ROOT, self.server_if));
        // Steering's lock file and a killed `xgate run`'s state file, for our (uniquely
        // named) interface.
        let lock_dir = dataplane::bpf::LOCK_DIR;
        let _ = fs::remove_file(format!("{lock_dir}/{}.lock", self.server_if));
        let _ = fs::remove_file(format!("{lock_dir}/{}.json", self.server_if));
        // The cgroup a killed `xgate run` created for our interface (empty once it is dead).
        if let Ok(root) = dataplane::bpf::cgroup2_root() {
            let _ = fs::remove_dir(root.join(format!("xgate-{}", self.server_if)));
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
        // `net` drops after this: the namespaces, and with them the veths.
    }
}

/// The lines a child prints, through a channel.
pub fn lines_of(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `xgate run --config <config> --netns <the gateway netns> <extra>` as a child of
/// `topo` and waits for its "xgate: ready" line; returns its index in `topo.children`.
pub fn start_xgate(topo: &mut Topology, config: &Path, extra: &[&OsStr]) -> usize {
    let ns = topo.server_ns.clone();
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--netns"),
        OsStr::new(&ns),
    ];
    args.extend_from_slice(extra);
    spawn_xgate(topo, &args).0
}

/// Starts `xgate run <args>` as a child of `topo` (killed by PID if the test panics) and waits
/// for its "xgate: ready" line; returns its index in `topo.children` and the lines it printed
/// before that one.
pub fn spawn_xgate<S: AsRef<OsStr>>(topo: &mut Topology, args: &[S]) -> (usize, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xgate run");
    let lines = lines_of(child.stdout.take().expect("piped"));
    topo.children.push(child);
    let mut said = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("xgate run did not say it is ready");
        if line.starts_with("xgate: ready") {
            return (topo.children.len() - 1, said);
        }
        said.push(line);
    }
}

/// SIGTERM to the `xgate run` at `idx` of `topo.children`, which must exit successfully
/// within 20 s.
pub fn terminate(topo: &mut Topology, idx: usize) {
    let pid = topo.children[idx].id();
    // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let st = loop {
        if let Some(st) = topo.children[idx].try_wait().expect("waiting for xgate") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "xgate did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "xgate exited with {st}");
}

/// `GET /bytes/{n}`'s body: byte i is b'a' + i % 26.
pub fn bytes_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Deterministic pseudo-random bytes (xorshift64*), so an echo cannot pass by a pattern.
pub fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory under the system's temporary directory, made empty at creation and removed
/// with what it holds when dropped, so a failing test leaves nothing behind.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
