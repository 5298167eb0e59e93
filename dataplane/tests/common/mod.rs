//! Shared guards of the root-only end-to-end tests: network namespaces, a veth pair and a
//! cgroup v2 that a test creates with unique names and that are always removed (also when the
//! test panics), plus small helpers to run clients inside the client namespace.
//!
//! Topology: netns `<p>g` holds veth `<p>g` (the gateway side, 10.77.0.1/30, two RX queues);
//! netns `<p>c` holds veth `<p>c` (the client, 10.77.0.2/30, checksum and segmentation
//! offloads off so that AF_XDP sees whole, checksummed frames). A test thread enters the
//! gateway netns to load programs and bind sockets there, and goes back before cleaning up.
#![allow(dead_code)] // each test binary uses its own subset

pub mod raw;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dataplane::bpf::cgroup2_root;

pub mod netns_thread;

pub const GW_IP: &str = "10.77.0.1";
pub const CLIENT_IP: &str = "10.77.0.2";

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn run(cmd: &[&str]) -> std::process::Output {
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
pub struct Topology {
    pub prefix: String,
    pub gw_ns: String,
    pub client_ns: String,
    pub gw_if: String,
    pub client_if: String,
    pub cgroup: PathBuf,
    pub netns_created: Vec<String>,
    pub cgroup_created: bool,
    pub children: Vec<Child>,
    /// The test thread's original netns while it sits in the gateway's.
    pub home_ns: Option<File>,
}

impl Topology {
    pub fn create() -> Topology {
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
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            &t.client_if,
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
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
    pub fn enter_gateway(&mut self) {
        let home = File::open("/proc/thread-self/ns/net").expect("own netns");
        let gw = File::open(format!("/var/run/netns/{}", self.gw_ns)).expect("gateway netns");
        // SAFETY: setns on fds we hold; CLONE_NEWNET only changes this thread's namespace.
        let rc = unsafe { libc::setns(gw.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        self.home_ns = Some(home);
    }

    /// Back to the thread's own netns; false if that failed (never panics: Drop calls it).
    pub fn leave_gateway(&mut self) -> bool {
        match self.home_ns.take() {
            // SAFETY: as in enter_gateway, with the fd of the thread's original namespace.
            Some(home) => unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) == 0 },
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
            self.gw_ns
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
            .args([GW_IP, &port.to_string()])
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
            &self.gw_ns,
            "-d",
            "link",
            "show",
            "dev",
            &self.gw_if,
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
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.netns_created.drain(..) {
            // Deleting a netns deletes the veth end inside it, and with it the pair.
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        // Pins a killed gateway left behind (a live one removes its own).
        let _ = fs::remove_dir_all(format!("{}/{}", dataplane::bpf::PIN_ROOT, self.gw_if));
        // Steering's lock file and a killed `xgate run`'s state file, for our (uniquely
        // named) interface.
        let _ = fs::remove_file(format!("{}/{}.lock", dataplane::bpf::LOCK_DIR, self.gw_if));
        let _ = fs::remove_file(format!("{}/{}.json", dataplane::bpf::LOCK_DIR, self.gw_if));
        // The cgroup a killed `xgate run` created for our interface (empty once it is dead).
        if let Ok(root) = dataplane::bpf::cgroup2_root() {
            let _ = fs::remove_dir(root.join(format!("xgate-{}", self.gw_if)));
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

pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
