//! Root-only end-to-end proof of the bypass path: real clients (curl, python3) in a client
//! network namespace talk HTTP over a veth pair to `gateway::Bypass`, whose pollers run the
//! user-space TCP/HTTP engine behind XDP steering and AF_XDP sockets.
//!
//! Topology (tests/common): netns `<p>g` with veth `<p>g` (gateway, 10.77.0.1, two RX queues,
//! XDP attached, one poller per queue), netns `<p>c` with veth `<p>c` (client, offloads off).
//! The test process joins the test cgroup through the gateway (so sock_ops tags the gateway's
//! listener) and goes back when the gateway drops. The gateway's kernel listener is served by
//! a small acceptor thread standing in for the kernel path: it answers `kernel`.
//!
//! Every wait is bounded; everything created is removed, also on panic. Skips (passes with a
//! message) when not run as root.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{bytes_body, is_root, lines_of, noise, run, wait_for, Topology, CLIENT_IP, GW_IP};
use dataplane::afxdp::{PollerCounters, PollerError};
use dataplane::bpf::{PortState, PortStats, Stat};
use dataplane::gateway::{Bypass, BypassConfig, BypassError, CgroupPlacement, PortConfig};
use dataplane::tcp::FlowKey;

const PORT: u16 = 18090;

/// Counts heap allocations made on poller threads (named `xgate-q*`), to check that the
/// steady state of the bypass path does not allocate.
struct CountingAlloc;

static POLLER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ON_POLLER: Cell<bool> = const { Cell::new(false) };
}

fn on_poller_thread() -> bool {
    ON_POLLER
        .try_with(|known| {
            if known.get() {
                return true;
            }
            let mut name = [0u8; 16];
            // SAFETY: PR_GET_NAME writes at most 16 bytes into `name`; no allocation.
            unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
            let yes = name.starts_with(b"xgate-q");
            known.set(yes);
            yes
        })
        .unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_poller_thread() {
            POLLER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if on_poller_thread() {
            POLLER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_poller_thread() {
            POLLER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;
/// Bound on any single client command.
const CLIENT_TIMEOUT_SECS: u32 = 20;

/// The kernel path's stand-in: accepts on the gateway's listener, answers every connection
/// with `kernel` and closes. Counts what it accepted.
struct KernelPath {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KernelPath {
    fn serve(listener: TcpListener) -> Self {
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let _ = conn.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nkernel",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for KernelPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// curl in the client netns; returns the body on HTTP success, panics otherwise.
fn curl(topo: &Topology, path: &str, extra: &[&str]) -> Vec<u8> {
    let url = format!("http://{GW_IP}:{PORT}{path}");
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--fail"])
        .args(["--max-time", &CLIENT_TIMEOUT_SECS.to_string()])
        .args(extra)
        .arg(&url)
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {url} {extra:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sum(counters: &[PollerCounters], f: impl Fn(&PollerCounters) -> u64) -> u64 {
    counters.iter().map(f).sum()
}

fn port_stats(gw: &Bypass) -> PortStats {
    gw.maps().port_stats(PORT).unwrap().expect("port counters")
}

/// utime + stime of one thread of this process, in clock ticks.
fn thread_cpu_ticks(tid: u64) -> u64 {
    let stat =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("poller thread stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Keep-alive and connection-churn clients in one python3 process; prints
/// `ok <conns> <keepalive> <churn secs> <keepalive secs>`.
const LOAD_SCRIPT: &str = r#"
import http.client, os, sys, time
host, port, n_conn, n_ka = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def pattern(n):
    return bytes(97 + i % 26 for i in range(n))
t0 = time.time()
for i in range(n_conn):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/health")
    r = c.getresponse()
    body = r.read()
    if r.status != 200 or body != b"ok":
        print("bad churn", i, r.status, body[:60], flush=True)
        sys.exit(1)
    c.close()
t1 = time.time()
c = http.client.HTTPConnection(host, port, timeout=10)
for i in range(n_ka):
    k = i % 3
    if k == 0:
        c.request("GET", "/health")
        want = b"ok"
    elif k == 1:
        n = (i * 7919) % 20000
        c.request("GET", "/bytes/%d" % n)
        want = pattern(n)
    else:
        want = os.urandom((i * 131) % 5000)
        c.request("POST", "/echo", body=want)
    r = c.getresponse()
    got = r.read()
    if r.status != 200 or got != want:
        print("bad keep-alive", i, r.status, len(got), len(want), flush=True)
        sys.exit(1)
c.close()
t2 = time.time()
print("ok %d %d %.3f %.3f" % (n_conn, n_ka, t1 - t0, t2 - t1), flush=True)
"#;

/// One keep-alive connection that answers one request, reports its port, and closes when a
/// line arrives on stdin.
const HELD_SCRIPT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
data = b""
while not data.endswith(b"\r\n\r\nok"):
    d = s.recv(4096)
    if not d:
        break
    data += d
print("ready", s.getsockname()[1], flush=True)
sys.stdin.readline()
s.close()
print("closed", flush=True)
"#;

/// The root tests move the whole process between cgroups: one at a time.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

/// Starts the gateway inside the gateway netns (the test process joins the test cgroup) with
/// `PORT` on, and the kernel path's stand-in on its listener.
fn start_gateway(topo: &mut Topology) -> (Bypass, KernelPath) {
    topo.enter_gateway();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut config = BypassConfig::new(
        topo.server_if.clone(),
        [PortConfig {
            port: PORT,
            bypass: true,
        }],
    );
    config.cgroup = CgroupPlacement::Join(topo.cgroup.clone());
    // A core that does not exist is start's typed error, and start leaves nothing behind.
    config.cores = vec![1023];
    let bad = Bypass::start(&config);
    assert!(
        matches!(
            bad,
            Err(BypassError::Poller(PollerError::Affinity {
                core: 1023,
                ..
            }))
        ),
        "{bad:?}"
    );
    drop(bad);
    assert!(!PathBuf::from(dataplane::bpf::PIN_ROOT)
        .join(&topo.server_if)
        .exists());
    config.cores = (0..4).map(|q| q % ncpu).collect();
    config.engine.tcp.time_wait = dataplane::time::Duration::from_secs(2);
    let started = Bypass::start(&config);
    assert!(topo.leave_gateway(), "setns back to the test's netns");
    let mut gw = started.expect("starting the gateway");
    eprintln!(
        "gateway on {}: XDP {:?}, {} queue(s), cgroup {:?}",
        topo.server_if,
        gw.steering().attached_mode(),
        gw.queues(),
        gw.cgroup()
    );
    assert!(gw.maps().listener(PORT).unwrap().is_some(), "listener tag");
    assert_eq!(gw.maps().port_state(PORT).unwrap(), Some(PortState::On));
    let kernel = KernelPath::serve(gw.take_listener(PORT).expect("the port's listener"));
    (gw, kernel)
}

/// Clients that keep running while the port is switched: two threads open a connection per
/// request, two keep one connection alive (reconnecting when the kernel path closes it). Any
/// exception or unexpected answer is a failure. Prints `bypass=N kernel=N failures=N`, then up
/// to five `error ...` lines.
const SWITCH_LOAD_SCRIPT: &str = r#"
import http.client, sys, threading, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
lock = threading.Lock()
counts = {"ok": 0, "kernel": 0, "fail": 0}
errors = []
end = time.time() + secs
def record(kind, err=None):
    with lock:
        counts[kind] += 1
        if err is not None and len(errors) < 5:
            errors.append(err)
def check(r, body):
    if r.status == 200 and body in (b"ok", b"kernel"):
        record("ok" if body == b"ok" else "kernel")
    else:
        record("fail", "status %d body %r" % (r.status, body[:40]))
def churn():
    while time.time() < end:
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/health")
            r = c.getresponse()
            check(r, r.read())
            c.close()
        except Exception as e:
            record("fail", "churn: %r" % e)
def keepalive():
    c = http.client.HTTPConnection(host, port, timeout=5)
    while time.time() < end:
        try:
            c.request("GET", "/health")
            r = c.getresponse()
            check(r, r.read())
        except Exception as e:
            record("fail", "keep-alive: %r" % e)
            c.close()
    c.close()
threads = [threading.Thread(target=churn) for _ in range(2)]
threads += [threading.Thread(target=keepalive) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("bypass=%d kernel=%d failures=%d" % (counts["ok"], counts["kernel"], counts["fail"]), flush=True)
for e in errors:
    print("error", e, flush=True)
"#;

/// The port switched on -> draining -> off -> on repeatedly while clients run: no request
/// fails, no connection is reset, and both paths take new connections.
#[test]
fn switching_under_load_loses_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: the switching test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut topo = Topology::create();
    let (gw, kernel) = start_gateway(&mut topo);
    const CYCLES: u32 = 8;
    let secs = f64::from(CYCLES) * 1.2 + 1.0;
    let load = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "/usr/bin/python3",
            "-u",
            "-c",
        ])
        .arg(SWITCH_LOAD_SCRIPT)
        .args([GW_IP, &PORT.to_string(), &format!("{secs}")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the load clients");
    topo.children.push(load);
    let mut kernel_conns = Vec::new();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..CYCLES {
        gw.set_port_state(PORT, PortState::Draining).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        gw.set_port_state(PORT, PortState::Off).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        kernel_conns.push(kernel.accepted());
        gw.set_port_state(PORT, PortState::On).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let load = topo.children.last_mut().unwrap();
    let start = Instant::now();
    while load.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "load clients hang"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    load.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    eprintln!("switching {CYCLES} times under load: {}", out.trim());
    let first = out.lines().next().unwrap_or_default();
    let n = |key: &str| -> u64 {
        first
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {first:?}"))
    };
    assert_eq!(n("failures="), 0, "{out}");
    assert!(n("bypass=") > 100, "{out}");
    assert!(n("kernel=") > 10, "{out}");
    // Each OFF phase gave the kernel new connections.
    assert!(
        kernel_conns.windows(2).all(|w| w[1] > w[0]),
        "kernel accepts per cycle: {kernel_conns:?}"
    );
    let st = port_stats(&gw);
    eprintln!("port {PORT} after switching: {st:?}");
    assert!(st.get(Stat::KernelConns) > 10 && st.get(Stat::SynSteered) > 100);
    let c = gw.counters();
    assert_eq!(sum(&c, |c| c.flow_map_errors), 0);
    eprintln!(
        "engine: {} requests, {} RSTs sent, {} retransmits",
        sum(&c, |c| c.http_requests),
        sum(&c, |c| c.tcp_rsts_out),
        sum(&c, |c| c.tcp_retransmits)
    );
    drop(kernel);
    drop(gw);
    drop(topo);
}

/// Not a test on its own: the gateway process that `gateway_killed_falls_back_to_kernel` runs
/// (this binary, `--ignored --exact`) and kills with SIGKILL. Starts a `Bypass` in the netns
/// `XGT_HELPER_NS` on `XGT_HELPER_IF`, joining `XGT_HELPER_CGROUP`, with `PORT` on and its
/// listener kept (nobody accepts on it), prints `ready` and waits. Does nothing without them.
#[test]
#[ignore = "helper process for gateway_killed_falls_back_to_kernel"]
fn helper_run_gateway() {
    let (Ok(ns), Ok(ifname), Ok(cgroup)) = (
        std::env::var("XGT_HELPER_NS"),
        std::env::var("XGT_HELPER_IF"),
        std::env::var("XGT_HELPER_CGROUP"),
    ) else {
        return;
    };
    // This thread stays in the gateway netns until the process is killed.
    let _in_gateway = xgate_testnet::netns::NetnsGuard::enter(&ns).expect("gateway netns");
    let mut config = BypassConfig::new(
        ifname,
        [PortConfig {
            port: PORT,
            bypass: true,
        }],
    );
    config.cgroup = CgroupPlacement::Join(PathBuf::from(cgroup));
    let _gw = Bypass::start(&config).expect("helper gateway");
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// kill -9 of the gateway process while clients run: nothing is black-holed. New connections
/// reach the kernel at once (refused cleanly while no kernel server listens, accepted by one
/// that does), and a new gateway takes the interface over from the dead one's pins.
#[test]
fn gateway_killed_falls_back_to_kernel() {
    if !is_root() {
        eprintln!("SKIPPED: the kill -9 test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut topo = Topology::create();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "helper_run_gateway", "--nocapture"])
        .env("XGT_HELPER_NS", &topo.server_ns)
        .env("XGT_HELPER_IF", &topo.server_if)
        .env("XGT_HELPER_CGROUP", &topo.cgroup)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the gateway process");
    let out = lines_of(helper.stdout.take().unwrap());
    topo.children.push(helper);
    let helper_idx = topo.children.len() - 1;
    let start = Instant::now();
    while out
        .recv_timeout(Duration::from_secs(30))
        .expect("gateway process not ready")
        != "ready"
    {
        assert!(start.elapsed() < Duration::from_secs(30));
    }
    assert_eq!(curl(&topo, "/health", &[]), b"ok");

    // Clients running when the gateway dies.
    let load = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "/usr/bin/python3",
            "-u",
            "-c",
        ])
        .arg(SWITCH_LOAD_SCRIPT)
        .args([GW_IP, &PORT.to_string(), "3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the load clients");
    topo.children.push(load);
    let load_idx = topo.children.len() - 1;
    std::thread::sleep(Duration::from_millis(1000));
    topo.stop_child(helper_idx); // SIGKILL, by PID
    let killed = Instant::now();

    // No kernel server: a new connection is refused at once (a RST), not left hanging.
    topo.assert_refused_without_xdp(PORT, killed);

    // A kernel server on the port answers.
    let (listener, lines) = topo.start_listener(PORT);
    assert!(
        topo.client_connect(PORT, None, 3),
        "kernel server not reached"
    );
    assert!(lines
        .recv_timeout(Duration::from_secs(3))
        .is_ok_and(|l| l.starts_with("accepted")));
    let mut load_out = String::new();
    {
        let load = &mut topo.children[load_idx];
        let start = Instant::now();
        while load.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "load clients hang"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        load.stdout
            .take()
            .unwrap()
            .read_to_string(&mut load_out)
            .unwrap();
    }
    eprintln!(
        "clients across the kill (failures are the killed gateway's connections and the \
         refused ones): {}",
        load_out.trim().replace('\n', "; ")
    );
    topo.stop_child(listener);

    // A new gateway takes over the dead one's interface (its stale pins are replaced).
    let (gw, kernel) = start_gateway(&mut topo);
    assert_eq!(curl(&topo, "/health", &[]), b"ok");
    assert_eq!(kernel.accepted(), 0);
    drop(kernel);
    drop(gw);
    drop(topo);
}

/// Figures, not a proof (ignored by default; run it in release): wrk from the client netns
/// against the bypass path, keep-alive `GET /health`. Client and gateway share the machine's
/// cores and veth runs AF_XDP in copy mode, so this is a smoke figure, not a benchmark.
#[test]
#[ignore = "figures: cargo test --release --test bypass_e2e -- --ignored wrk_figures"]
fn wrk_figures() {
    if !is_root() || Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("SKIPPED: needs root and wrk");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut topo = Topology::create();
    let (gw, kernel) = start_gateway(&mut topo);
    for (conns, path) in [(16, "/health"), (1, "/health"), (16, "/bytes/16384")] {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.client_ns,
                "wrk",
                "-t1",
                "-d5s",
                "--latency",
            ])
            .arg(format!("-c{conns}"))
            .arg(format!("http://{GW_IP}:{PORT}{path}"))
            .output()
            .expect("running wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("wrk -c{conns} {path}:\n{text}");
        assert!(out.status.success());
        assert!(!text.contains("Non-2xx") && !text.contains("Socket errors"));
    }
    let c = gw.counters();
    for (q, c) in c.iter().enumerate() {
        eprintln!("queue {q}: {c:?} busy ratio {:.3}", c.busy_ratio());
    }
    assert_eq!(kernel.accepted(), 0);
    drop(kernel);
    drop(gw);
    drop(topo);
}

#[test]
fn bypass_end_to_end() {
    if !is_root() {
        eprintln!("SKIPPED: the bypass end-to-end test needs root (netns, XDP, AF_XDP, cgroups)");
        return;
    }
    let _serial = ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let test_start = Instant::now();
    let mut topo = Topology::create();
    let body_file = TempFile(std::env::temp_dir().join(format!("{}.body", topo.name)));

    let (mut gw, kernel) = start_gateway(&mut topo);
    let pin_dir = gw.steering().pin_dir().to_path_buf();

    // Bypass: GET /health, GET /bytes/100000, POST /echo with 1 MiB, byte-exact.
    let t = Instant::now();
    assert_eq!(curl(&topo, "/health", &[]), b"ok");
    eprintln!("GET /health through the bypass in {:?}", t.elapsed());
    let got = curl(&topo, "/bytes/100000", &[]);
    assert_eq!(got.len(), 100_000);
    assert!(got == bytes_body(100_000), "GET /bytes/100000 differs");
    let body = noise(1 << 20, 0x5eed);
    std::fs::write(&body_file.0, &body).unwrap();
    let t = Instant::now();
    let echoed = curl(
        &topo,
        "/echo",
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", body_file.0.display()),
        ],
    );
    eprintln!("POST /echo 1 MiB in {:?}", t.elapsed());
    assert_eq!(echoed.len(), body.len());
    assert!(echoed == body, "POST /echo 1 MiB differs");

    let st = port_stats(&gw);
    eprintln!("port {PORT} after 3 curls: {st:?}");
    assert!(st.get(Stat::SynSteered) >= 3, "{st:?}");
    assert!(
        st.get(Stat::Redirected) > 700,
        "1 MiB alone is > 700 segments: {st:?}"
    );
    assert!(st.get(Stat::UserFlow) > 0, "{st:?}");
    assert_eq!(st.get(Stat::KernelConns), 0);
    assert_eq!(
        kernel.accepted(),
        0,
        "the kernel listener accepted a bypass connection"
    );
    wait_for("engine counters", Duration::from_secs(3), || {
        sum(&gw.counters(), |c| c.http_requests) >= 3
    });
    let c = gw.counters();
    assert!(sum(&c, |c| c.tcp_established) >= 3);
    assert!(sum(&c, |c| c.rx_frames) >= st.get(Stat::Redirected) / 2);
    assert!(sum(&c, |c| c.tx_frames) > 70, "100 kB and 1 MiB went out");
    assert_eq!(sum(&c, |c| c.flow_map_errors), 0);

    // Many requests: connection churn, then one long keep-alive connection. Poller-thread
    // allocations are counted across each phase.
    let load = |conns: u32, keepalive: u32| {
        let allocs = POLLER_ALLOCS.load(Ordering::Relaxed);
        let out = Command::new("ip")
            .args(["netns", "exec", &topo.client_ns, "/usr/bin/python3", "-c"])
            .arg(LOAD_SCRIPT)
            .args([GW_IP, &PORT.to_string()])
            .args([conns.to_string(), keepalive.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("running the load client");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && said.starts_with("ok "),
            "load: {said}"
        );
        let f: Vec<f64> = said
            .split_whitespace()
            .skip(3)
            .map(|x| x.parse().unwrap())
            .collect();
        (f[0] + f[1], POLLER_ALLOCS.load(Ordering::Relaxed) - allocs)
    };
    let (secs, churn_allocs) = load(200, 0);
    eprintln!(
        "load: 200 connections, 1 request each, in {secs:.2} s = {:.0} conn/s; {churn_allocs} \
         poller allocations",
        200.0 / secs
    );
    let (secs, ka_allocs) = load(0, 600);
    eprintln!(
        "load: 600 keep-alive requests (health, bytes up to 20 kB, echo up to 5 kB) in \
         {secs:.2} s = {:.0} req/s; {ka_allocs} poller allocations \
         (python3 client and a debug build: not a benchmark)",
        600.0 / secs
    );
    assert!(
        ka_allocs <= 16,
        "the steady state allocated {ka_allocs} times for 600 requests"
    );
    wait_for("engine request count", Duration::from_secs(3), || {
        sum(&gw.counters(), |c| c.http_requests) >= 803
    });
    assert_eq!(kernel.accepted(), 0);

    // user_flows holds a live connection, and forgets it once closed.
    let mut held = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "/usr/bin/python3",
            "-u",
            "-c",
        ])
        .arg(HELD_SCRIPT)
        .args([GW_IP, &PORT.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the held client");
    let mut held_in = held.stdin.take().unwrap();
    let held_out = lines_of(held.stdout.take().unwrap());
    topo.children.push(held);
    let line = held_out
        .recv_timeout(Duration::from_secs(10))
        .expect("held client did not get its answer");
    let held_port: u16 = line
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let flow = FlowKey::new_v4(
        SocketAddrV4::new(GW_IP.parse().unwrap(), PORT),
        SocketAddrV4::new(CLIENT_IP.parse().unwrap(), held_port),
    );
    assert!(
        gw.maps().has_user_flow(flow).unwrap(),
        "live connection not in user_flows: {:?}",
        gw.maps().user_flows()
    );
    wait_for("connection gauge", Duration::from_secs(3), || {
        sum(&gw.counters(), |c| c.connections) >= 1
    });
    writeln!(held_in, "close").unwrap();
    assert_eq!(
        held_out.recv_timeout(Duration::from_secs(5)).as_deref(),
        Ok("closed")
    );
    wait_for("user_flows to empty", Duration::from_secs(5), || {
        gw.maps().user_flows().is_empty()
    });
    wait_for("connections to close", Duration::from_secs(5), || {
        sum(&gw.counters(), |c| c.connections) == 0
    });
    let c = gw.counters();
    assert_eq!(
        sum(&c, |c| c.flows_added),
        sum(&c, |c| c.flows_removed),
        "every added flow was removed"
    );
    eprintln!(
        "user_flows: {} added, {} removed, now empty",
        sum(&c, |c| c.flows_added),
        sum(&c, |c| c.flows_removed)
    );

    // Port OFF: the kernel listener answers and nothing is redirected.
    gw.set_port_state(PORT, PortState::Off).unwrap();
    let before = port_stats(&gw);
    assert_eq!(curl(&topo, "/health", &[]), b"kernel");
    assert_eq!(kernel.accepted(), 1);
    let after = port_stats(&gw);
    assert_eq!(after.get(Stat::Redirected), before.get(Stat::Redirected));
    assert!(after.get(Stat::KernelConns) > before.get(Stat::KernelConns));
    // And back ON: the bypass answers again.
    gw.set_port_state(PORT, PortState::On).unwrap();
    assert_eq!(curl(&topo, "/health", &[]), b"ok");
    assert_eq!(kernel.accepted(), 1);
    wait_for("connections to close", Duration::from_secs(5), || {
        sum(&gw.counters(), |c| c.connections) == 0 && gw.maps().user_flows().is_empty()
    });

    // Idle: the pollers sleep. Let TIME_WAIT records (2 s here) and spins run out first.
    std::thread::sleep(Duration::from_millis(2500));
    let c0 = gw.counters();
    let cpu0: Vec<u64> = c0.iter().map(|c| thread_cpu_ticks(c.thread_id)).collect();
    std::thread::sleep(Duration::from_secs(2));
    let c1 = gw.counters();
    let cpu1: Vec<u64> = c1.iter().map(|c| thread_cpu_ticks(c.thread_id)).collect();
    for q in 0..c0.len() {
        let (a, b) = (&c0[q], &c1[q]);
        eprintln!(
            "queue {q} idle 2 s: busy loops +{}, idle loops +{}, sleeps +{}, cpu ticks +{} \
             (lifetime: rx {} tx {} batches {} kicks {} ring-full {} no-frame {} fill-empty {} \
             busy ratio {:.3})",
            b.busy_loops - a.busy_loops,
            b.idle_loops - a.idle_loops,
            b.sleeps - a.sleeps,
            cpu1[q] - cpu0[q],
            b.rx_frames,
            b.tx_frames,
            b.rx_batches,
            b.tx_kicks,
            b.tx_ring_full,
            b.tx_no_frame,
            b.fill_ring_empty,
            b.busy_ratio()
        );
        assert!(b.busy_loops - a.busy_loops <= 4, "queue {q} kept working");
        assert!(b.sleeps - a.sleeps <= 10, "queue {q} woke too often");
        assert!(cpu1[q] - cpu0[q] <= 2, "queue {q} used CPU while idle");
    }

    // Shutdown: pollers end cleanly; their engines saw every request.
    assert!(gw.pollers_running());
    let exits = gw.shutdown();
    let mut requests = 0;
    for exit in &exits {
        assert!(!exit.panicked && exit.error.is_none(), "{exit:?}");
        let poller = exit.poller.as_ref().unwrap();
        let http = poller.engine().http_stats();
        let tcp = poller.engine().tcp_stats();
        eprintln!(
            "queue {}: {} requests, 2xx {}, {} established, {} retransmits, {} drops",
            exit.queue,
            http.requests,
            http.responses[1],
            tcp.connections_established,
            tcp.retransmits,
            tcp.drops.iter().sum::<u64>()
        );
        requests += http.requests;
        let xs = poller.queue().statistics().unwrap();
        assert_eq!(xs.rx_invalid_descs() + xs.tx_invalid_descs(), 0);
    }
    assert!(requests >= 805, "engines saw {requests} requests");
    // Stopped pollers left `xsks`: with the port still ON, a new connection falls back to the
    // kernel listener instead of a socket nobody reads.
    assert_eq!(gw.maps().port_state(PORT).unwrap(), Some(PortState::On));
    let no_xsk = port_stats(&gw).get(Stat::NoXsk);
    assert_eq!(curl(&topo, "/health", &[]), b"kernel");
    assert_eq!(kernel.accepted(), 2);
    assert!(port_stats(&gw).get(Stat::NoXsk) > no_xsk);
    drop(exits);
    drop(kernel);

    // Teardown leaves nothing: pins, XDP, cgroup membership, then netns/veth/cgroup.
    drop(gw);
    assert!(!pin_dir.exists(), "pins left in {}", pin_dir.display());
    let link = topo.gw_link();
    assert!(!link.contains("xdp"), "XDP left attached");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(!own.contains(&topo.name), "still in the test cgroup: {own}");
    let (prefix, cgroup) = (topo.name.clone(), topo.cgroup.clone());
    drop(topo);
    let netns = run(&["ip", "netns", "list"]);
    assert!(!String::from_utf8_lossy(&netns.stdout).contains(&prefix));
    let links = run(&["ip", "link", "show"]);
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&prefix));
    assert!(!cgroup.exists(), "cgroup {cgroup:?} left");
    eprintln!("bypass end-to-end done in {:?}", test_start.elapsed());
}
