//! Root-only end-to-end proof of the `xgate` binary: `xgate run` in the gateway netns of a veth
//! topology (tests/common), curl from the client netns through the bypass path and the kernel
//! path, `xgate bypass off/on` under client loops with no failed request and no reset,
//! `xgate status --json` parsed and its counters moving, SIGTERM leaving no pin, XDP program,
//! state file or cgroup (and the topology leaving no netns), the clear errors for a non-root
//! user and for a gateway that does not run.
//!
//! Every wait is bounded; everything created is removed, also on panic. Skips (passes with a
//! message) when not run as root.

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::status::{metric, num, pollers_sum, port, settle, status};
use common::{is_root, lines_of, TempDir, Topology, GW_IP};
use serde_json::Value;

const BYPASS: u16 = 18180;
const KERNEL: u16 = 18181;
const ADMIN: u16 = 18179;

/// `GET /metrics` of this file's admin endpoint.
fn scrape_metrics(topo: &Topology) -> prometheus_parse::Scrape {
    common::status::scrape_metrics(topo, ADMIN)
}

fn xgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xgate"))
}

fn out(mut cmd: Command) -> Output {
    cmd.output().expect("running xgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn curl(topo: &Topology, port: u16, path: &str) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--fail"])
        .args(["--max-time", "10"])
        .arg(format!("http://{GW_IP}:{port}{path}"))
        .output()
        .expect("running curl");
    assert!(
        o.status.success(),
        "curl :{port}{path}: {}",
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("waiting for xgate") {
            return st;
        }
        assert!(
            start.elapsed() < timeout,
            "xgate did not exit in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client_loop_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo/client_loop.sh")
}

#[test]
fn xgate_run_bypass_status_sigterm() {
    if !is_root() {
        eprintln!("skipping xgate_run_bypass_status_sigterm: needs root");
        return;
    }
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let (gw, pid) = start_both_paths(&mut topo, "3", &[]);

    // Bypass path: segments redirected, the kernel listener accepted nothing.
    assert_eq!(curl(&topo, BYPASS, "/health"), "ok");
    assert_eq!(curl(&topo, BYPASS, "/bytes/50000").len(), 50_000);
    settle();
    let s1 = status(&ifname);
    assert_eq!(s1["pid"], pid);
    let b = port(&s1, BYPASS);
    assert_eq!(b["listener_tagged"], true);
    assert_eq!(b["state"], "on");
    assert!(
        num(b, "redirected") > 0 && num(b, "syns_steered") >= 2,
        "{b}"
    );
    assert_eq!(num(b, "kernel_connections_total"), 0, "{b}");
    assert_eq!(num(&s1["kernel"], "connections_total"), 0, "{s1}");
    assert!(num(&s1["bypass"], "requests") >= 2, "{s1}");
    // Only root reads or changes the gateway's state: pins, their directory, the state file.
    let mode = |p: &str| {
        let meta = std::fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777
    };
    let pins = format!("/sys/fs/bpf/xgate/{ifname}");
    assert_eq!(mode(&pins), 0o700, "{pins}");
    for map in ["xsks", "ports", "listeners", "user_flows", "stats"] {
        assert_eq!(mode(&format!("{pins}/{map}")), 0o600, "{pins}/{map}");
    }
    assert_eq!(mode(&format!("/run/xgate/{ifname}.json")), 0o600);
    // The admin endpoint: the same figures as a Prometheus page and as JSON.
    let scrape = scrape_metrics(&topo);
    assert_eq!(
        metric(
            &scrape,
            "xgate_requests_total",
            &[("port", "18180"), ("path", "bypass")]
        ),
        num(&b["bypass"], "requests") as f64
    );
    assert_eq!(
        metric(
            &scrape,
            "xgate_port_bypass",
            &[("port", "18180"), ("state", "on")]
        ),
        1.0
    );
    assert!(metric(&scrape, "xgate_bypass_tcp_handshakes_total", &[]) >= 2.0);
    assert_eq!(
        metric(
            &scrape,
            "xgate_bypass_drops_total",
            &[("reason", "malformed")]
        ),
        0.0
    );
    let page: Value = serde_json::from_str(&curl(&topo, ADMIN, "/status")).expect("JSON");
    assert_eq!(page["ifname"], ifname);
    assert_eq!(page["pid"], pid);
    assert!(
        s1["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["port"] != ADMIN),
        "the admin listener was tagged: {s1}"
    );
    // The engines' TCP counters, summed, with every drop reason named.
    let tcp = &s1["bypass_tcp"];
    assert!(num(tcp, "segments_in") > 0 && num(tcp, "connections_established") >= 2);
    assert!(num(&tcp["drops"], "malformed") == 0 && num(&tcp["drops"], "bad_cookie") == 0);
    // The same, for this port alone.
    assert!(num(&b["bypass"], "requests") >= 2, "{b}");
    assert!(num(&b["bypass"], "connections_total") >= 2, "{b}");
    assert_eq!(num(&b["kernel"], "requests"), 0, "{b}");

    // Kernel path: passed, answered by io_uring.
    assert_eq!(curl(&topo, KERNEL, "/health"), "ok");
    settle();
    let s2 = status(&ifname);
    let k = port(&s2, KERNEL);
    assert_eq!(
        (k["listener_tagged"].clone(), k["state"].clone()),
        (true.into(), "off".into())
    );
    assert!(num(k, "passed") > 0 && num(k, "redirected") == 0, "{k}");
    assert_eq!(num(k, "kernel_connections_total"), 1, "{k}");
    assert_eq!(num(&s2["kernel"], "requests"), 1, "{s2}");
    assert_eq!(num(&k["kernel"], "requests"), 1, "{k}");
    assert_eq!(num(&k["kernel"], "connections_total"), 1, "{k}");
    assert_eq!(num(&k["bypass"], "requests"), 0, "{k}");
    assert_eq!(
        num(&s2["bypass"], "requests"),
        num(&s1["bypass"], "requests")
    );

    // Switching under client loops (fresh connection + 5 keep-alive requests, repeatedly).
    let stop = std::env::temp_dir().join(format!("{}.stop", topo.name));
    let _ = std::fs::remove_file(&stop);
    let loops: Vec<Child> = (0..2)
        .map(|_| {
            Command::new("ip")
                .args(["netns", "exec", &topo.client_ns, "bash"])
                .arg(client_loop_script())
                .args([GW_IP, &BYPASS.to_string()])
                .arg(&stop)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("client loop")
        })
        .collect();
    let switch = |how: &str| {
        let o = out({
            let mut c = xgate();
            c.args(["bypass", how, &BYPASS.to_string(), "--drain-secs", "1"]);
            c.args(["--iface", &ifname]);
            c
        });
        assert!(o.status.success(), "bypass {how}: {}", text(&o.stderr));
        std::thread::sleep(Duration::from_millis(800));
        settle();
        let s = status(&ifname);
        port(&s, BYPASS).clone()
    };
    std::thread::sleep(Duration::from_millis(500));
    let first = status(&ifname);
    assert_eq!(
        first["pollers"].as_array().map(Vec::len),
        Some(2),
        "switching with several queues: one poller per queue"
    );
    let mut last = port(&first, BYPASS).clone();
    for round in 0..3 {
        let off = switch("off");
        assert_eq!(off["state"], "off");
        assert!(
            num(&off, "kernel_connections_total") > num(&last, "kernel_connections_total"),
            "round {round}: the kernel path takes new connections once off: {off}"
        );
        let on = switch("on");
        assert_eq!(on["state"], "on");
        assert!(
            num(&on, "syns_steered") > num(&off, "syns_steered"),
            "round {round}: the bypass path takes new connections once on: {on}"
        );
        last = on;
    }
    std::fs::write(&stop, b"").expect("stop file");
    let mut answered = 0;
    for l in loops {
        let o = l.wait_with_output().expect("client loop");
        let line = text(&o.stdout);
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("count"))
            .collect();
        assert_eq!(f.len(), 2, "client loop said {line:?}");
        assert_eq!(f[1], 0, "failed requests; curl said: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).trim().is_empty(),
            "curl: {}",
            text(&o.stderr)
        );
        answered += f[0];
    }
    let _ = std::fs::remove_file(&stop);
    assert!(answered > 50, "client loops answered {answered}");
    settle();
    let s = status(&ifname);
    let rsts = pollers_sum(&s, "rsts_out");
    assert_eq!(
        num(&s["kernel_path"], "resets"),
        0,
        "peer resets seen by the kernel path"
    );
    eprintln!(
        "client loops: {answered} requests answered across 3 off/on switches, none failed; \
         RSTs sent by the bypass engines: {rsts}"
    );
    assert_eq!(rsts, 0, "the bypass engines reset a connection");
    assert!(num(&s["bypass"], "requests") + num(&s["kernel"], "requests") >= answered);

    // Status as a table; a port the gateway does not serve is refused.
    let o = out({
        let mut c = xgate();
        c.args(["status", "--iface", &ifname]);
        c
    });
    assert!(o.status.success() && text(&o.stdout).contains("REDIRECTED"));
    let o = out({
        let mut c = xgate();
        c.args(["bypass", "on", "18199", "--iface", &ifname]);
        c
    });
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("port 18199 is not served"),
        "{}",
        text(&o.stderr)
    );

    // SIGTERM: a clean exit and nothing left behind.
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");
    assert!(!Path::new(&format!("/sys/fs/bpf/xgate/{ifname}")).exists());
    assert!(!Path::new(&format!("/run/xgate/{ifname}.json")).exists());
    let link = topo.gw_link();
    assert!(!link.contains("xdp"), "{link}");
    let cg = dataplane::bpf::cgroup2_root()
        .unwrap()
        .join(format!("xgate-{ifname}"));
    assert!(!cg.exists(), "{cg:?} left behind");
    let o = out({
        let mut c = xgate();
        c.args(["status", "--iface", &ifname]);
        c
    });
    assert!(text(&o.stderr).contains("no xgate gateway is running"));

    let prefix = topo.name.clone();
    drop(topo);
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!text(&ns.stdout).contains(&prefix), "netns left behind");
}

/// Starts `xgate run` with `args` and waits for "ready"; the child goes into `topo.children`
/// (killed by PID if the test panics). Returns its index and PID.
fn start_xgate(topo: &mut Topology, args: &[&str]) -> (usize, u32) {
    let (idx, _) = common::spawn_xgate(topo, args);
    (idx, topo.children[idx].id())
}

/// `xgate run` in `topo`'s gateway namespace with BYPASS on the bypass path, KERNEL on the
/// kernel path and the admin endpoint, a grace of `grace` seconds, then `extra`.
fn start_both_paths(topo: &mut Topology, grace: &str, extra: &[&str]) -> (usize, u32) {
    let (ifname, gw_ns) = (topo.server_if.clone(), topo.server_ns.clone());
    let (bypass, kernel) = (BYPASS.to_string(), KERNEL.to_string());
    let admin = format!("{GW_IP}:{ADMIN}");
    let mut args = vec![
        "--iface",
        &ifname,
        "--netns",
        &gw_ns,
        "--port",
        &bypass,
        "--port",
        &kernel,
        "--bypass",
        &bypass,
        "--shutdown-grace-secs",
        grace,
        "--admin-listen",
        &admin,
    ];
    args.extend_from_slice(extra);
    start_xgate(topo, &args)
}

/// The fail-safe through the binary, configured by a file: `kill -9` of `xgate run` while
/// clients run. New connections reach the kernel at once (refused cleanly while nothing
/// listens, accepted by a kernel server that does), XDP is gone with the process, `status`
/// says no gateway runs, and a new `xgate run` takes the interface over from the dead one's
/// pins, state file and cgroup, serves the bypass path again and leaves nothing at SIGTERM.
#[test]
fn xgate_killed_falls_back_to_kernel_and_a_new_one_takes_over() {
    if !is_root() {
        eprintln!(
            "skipping xgate_killed_falls_back_to_kernel_and_a_new_one_takes_over: needs root"
        );
        return;
    }
    const PORT: u16 = 18183;
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let file = std::env::temp_dir().join(format!("{}.toml", topo.name));
    std::fs::write(
        &file,
        format!(
            "interface = \"{ifname}\"\nshutdown_grace_secs = 2\n\n[[ports]]\nport = {PORT}\nbypass = true\n\n[[app.routes]]\npath = \"/conf\"\nbody = \"from the file\"\n"
        ),
    )
    .expect("config file");
    let file_arg = file.to_str().expect("utf-8 path").to_string();
    let gw_ns = topo.server_ns.clone();
    let run_args = ["--config", &file_arg, "--netns", &gw_ns];
    let (gw, _pid) = start_xgate(&mut topo, &run_args);
    assert_eq!(curl(&topo, PORT, "/conf"), "from the file");
    // The fail-safe with several queues: one poller per queue of the two-queue veth.
    settle();
    assert_eq!(status(&ifname)["pollers"].as_array().map(Vec::len), Some(2));

    // Clients running when the gateway dies.
    let stop = std::env::temp_dir().join(format!("{}.stop", topo.name));
    let _ = std::fs::remove_file(&stop);
    let load = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "bash"])
        .arg(client_loop_script())
        .args([GW_IP, &PORT.to_string()])
        .arg(&stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client loop");
    std::thread::sleep(Duration::from_millis(1000));
    topo.stop_child(gw); // SIGKILL, by PID
    let killed = Instant::now();

    // Nothing listens now: a new connection is refused at once, not black-holed.
    topo.assert_refused_without_xdp(PORT, killed);
    let o = out({
        let mut c = xgate();
        c.args(["status", "--iface", &ifname]);
        c
    });
    assert!(
        text(&o.stderr).contains("no xgate gateway is running"),
        "{}",
        text(&o.stderr)
    );

    // A kernel server on the port answers.
    let (listener, lines) = topo.start_listener(PORT);
    assert!(
        topo.client_connect(PORT, None, 3),
        "kernel server not reached"
    );
    assert!(lines
        .recv_timeout(Duration::from_secs(3))
        .is_ok_and(|l| l.starts_with("accepted")));
    topo.stop_child(listener);
    std::fs::write(&stop, b"").expect("stop file");
    let o = load.wait_with_output().expect("client loop");
    let _ = std::fs::remove_file(&stop);
    eprintln!(
        "client loop across the kill (failures are the killed gateway's connections and the refused ones): {}",
        text(&o.stdout).trim()
    );

    // A new gateway takes the interface over and serves the bypass path.
    let (gw2, pid2) = start_xgate(&mut topo, &run_args);
    assert_eq!(curl(&topo, PORT, "/conf"), "from the file");
    assert_eq!(curl(&topo, PORT, "/health"), "ok");
    settle();
    let s = status(&ifname);
    assert_eq!(s["pid"], pid2);
    let p = port(&s, PORT);
    assert!(num(&p["bypass"], "requests") >= 2, "{p}");
    assert_eq!(num(&p["kernel"], "connections_total"), 0, "{p}");
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid2 as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw2], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");
    assert!(!Path::new(&format!("/sys/fs/bpf/xgate/{ifname}")).exists());
    assert!(!Path::new(&format!("/run/xgate/{ifname}.json")).exists());
    let cg = dataplane::bpf::cgroup2_root()
        .unwrap()
        .join(format!("xgate-{ifname}"));
    assert!(
        !cg.exists(),
        "{cg:?} left behind (the dead gateway's, adopted)"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn non_root_gets_a_clear_error() {
    if !is_root() {
        eprintln!("skipping non_root_gets_a_clear_error: needs root to drop to uid 65534");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipping non_root_gets_a_clear_error: no setpriv");
        return;
    }
    for args in [
        &["run", "--iface", "lo", "--port", "18182"][..],
        &["bypass", "on", "18182"],
        &["status"],
        &["reload"],
    ] {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_xgate"))
            .args(args)
            .output()
            .expect("setpriv");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("must run as root (effective uid is 65534)"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn no_gateway_running_gives_a_clear_error() {
    if !is_root() {
        eprintln!("skipping no_gateway_running_gives_a_clear_error: needs root");
        return;
    }
    let ifname = format!("xgn{}", std::process::id());
    for args in [
        &["bypass", "on", "18183", "--iface", &ifname][..],
        &[
            "bypass",
            "off",
            "18183",
            "--iface",
            &ifname,
            "--drain-secs",
            "0",
        ],
        &["status", "--iface", &ifname],
    ] {
        let mut c = xgate();
        c.args(args);
        let o = out(c);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("no xgate gateway is running on \"{ifname}\"")),
            "{args:?}: {err}"
        );
    }
}

/// The client side of the drain test, in the client netns: on each of the two ports, one
/// keep-alive connection left idle after a request and one slow reader of a large `/bytes`
/// response; on the bypass port also a reader that stops reading. Prints `ready` once the
/// slow responses are flowing, waits for a line on stdin (the gateway has been sent
/// SIGTERM), then reports, one line each: `idle <port> eof <secs>`, `slow <port> ok|bad
/// <bytes>`, `stuck <port> reset|eof|open`.
const DRAIN_CLIENTS: &str = r#"
import socket, sys, threading, time
gw, ports, n = sys.argv[1], [int(p) for p in sys.argv[2:4]], int(sys.argv[4])
want = bytes(ord('a') + i % 26 for i in range(n))
def connect(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(30)
    s.connect((gw, port))
    return s
def head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise RuntimeError("eof in head")
        buf += d
    h, rest = buf.split(b"\r\n\r\n", 1)
    return h, rest
idle = {}
for p in ports:
    s = connect(p)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    h, rest = head(s)
    while len(rest) < 2:
        rest += s.recv(16)
    idle[p] = s
slow = {}
for p in ports:
    s = connect(p)
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
    h, rest = head(s)
    slow[p] = (s, bytearray(rest))
stuck = connect(ports[0])
stuck.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (5 * n))
head(stuck)
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
out = []
def watch_idle(p, s):
    try:
        d = s.recv(1)
        out.append("idle %d %s %.2f" % (p, "eof" if d == b"" else "data", time.monotonic() - t0))
    except OSError as e:
        out.append("idle %d error-%s %.2f" % (p, e.errno, time.monotonic() - t0))
def read_slow(p, s, body):
    try:
        while True:
            d = s.recv(32768)
            if not d:
                break
            body += d
            time.sleep(0.01)
        out.append("slow %d %s %d" % (p, "ok" if bytes(body) == want else "bad", len(body)))
    except OSError as e:
        out.append("slow %d error-%s %d" % (p, e.errno, len(body)))
threads = [threading.Thread(target=watch_idle, args=(p, s)) for p, s in idle.items()]
threads += [threading.Thread(target=read_slow, args=(p, s, b)) for p, (s, b) in slow.items()]
for t in threads:
    t.start()
for t in threads:
    t.join()
# The reader that stopped reading: by now the grace period has ended.
sys.stdin.readline()
stuck.settimeout(5)
try:
    while stuck.recv(1 << 20):
        pass
    out.append("stuck %d eof" % ports[0])
except ConnectionResetError:
    out.append("stuck %d reset" % ports[0])
except socket.timeout:
    out.append("stuck %d open" % ports[0])
for line in out:
    print(line, flush=True)
print("done", flush=True)
"#;

/// Issue 5's lifecycle: SIGTERM drains. New connections are refused at once; keep-alive
/// connections idle between requests are closed at once (on both paths); responses in
/// flight finish byte-exact, then their connections close; a client that stops reading is
/// reset when the grace period ends; then XDP is detached and the pins, state file and
/// cgroup are gone.
#[test]
fn sigterm_drains_in_flight_responses_refuses_new_ones_then_detaches() {
    if !is_root() {
        eprintln!("skipping sigterm_drains_in_flight_responses_refuses_new_ones_then_detaches: needs root");
        return;
    }
    const ON: u16 = 18185;
    const OFF: u16 = 18186;
    const GRACE_SECS: u64 = 8;
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let gw_ns = topo.server_ns.clone();
    let (on, off) = (ON.to_string(), OFF.to_string());
    let grace = GRACE_SECS.to_string();
    let (gw, pid) = start_xgate(
        &mut topo,
        &[
            "--iface",
            &ifname,
            "--netns",
            &gw_ns,
            "--port",
            &on,
            "--port",
            &off,
            "--bypass",
            &on,
            "--shutdown-grace-secs",
            &grace,
        ],
    );
    // A second gateway cannot claim the interface this one serves, and says why.
    let o = out({
        let mut c = xgate();
        c.args([
            "run", "--iface", &ifname, "--netns", &gw_ns, "--port", "18187",
        ]);
        c
    });
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("already"),
        "second gateway: {}",
        text(&o.stderr)
    );
    assert_eq!(
        curl(&topo, ON, "/health"),
        "ok",
        "the first one is untouched"
    );

    let n = 3_000_000usize;
    let mut clients = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "/usr/bin/python3",
            "-u",
            "-c",
        ])
        .arg(DRAIN_CLIENTS)
        .args([GW_IP, &on, &off, &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("drain clients");
    let mut to_clients = clients.stdin.take().expect("piped");
    let lines = lines_of(clients.stdout.take().expect("piped"));
    topo.children.push(clients);
    let clients = topo.children.len() - 1;
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(20)).as_deref(),
        Ok("ready")
    );

    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let sent = Instant::now();
    use std::io::Write as _;
    writeln!(to_clients, "go").expect("to the clients");

    // While it drains: new connections refused on both ports, the phase says so.
    std::thread::sleep(Duration::from_millis(300));
    for port in [ON, OFF] {
        let mut c = topo.spawn_connect(port, None, 3);
        let mut said = String::new();
        let _ = c.wait();
        std::io::Read::read_to_string(&mut c.stdout.take().expect("piped"), &mut said)
            .expect("reading the client");
        assert_eq!(
            said.trim(),
            "error ECONNREFUSED",
            "port {port} while draining"
        );
    }
    let s = status(&ifname);
    assert_eq!(s["phase"], "draining", "{s}");

    // The gateway exits at the end of the grace period (the stuck reader holds it).
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(GRACE_SECS + 15));
    let took = sent.elapsed();
    assert!(st.success(), "xgate run exited with {st:?}");
    writeln!(to_clients, "check").expect("to the clients");
    let mut report = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the drain clients' report");
        if line == "done" {
            break;
        }
        report.push(line);
    }
    eprintln!("SIGTERM drain, exit after {took:?}: {report:?}");
    for port in [ON, OFF] {
        let idle = report
            .iter()
            .find(|l| l.starts_with(&format!("idle {port} ")))
            .unwrap_or_else(|| panic!("idle {port} in {report:?}"));
        let fields: Vec<&str> = idle.split(' ').collect();
        assert_eq!(fields[2], "eof", "idle keep-alive on {port}: {idle}");
        let secs: f64 = fields[3].parse().unwrap();
        assert!(
            secs < (GRACE_SECS as f64) / 2.0,
            "idle keep-alive on {port} closed only after {secs} s"
        );
        let slow = format!("slow {port} ok {n}");
        assert!(report.contains(&slow), "{slow} not in {report:?}");
    }
    let stuck = format!("stuck {ON} reset");
    assert!(report.contains(&stuck), "{stuck} not in {report:?}");
    assert!(
        took >= Duration::from_secs(GRACE_SECS - 1),
        "exited before the grace period with a connection open"
    );
    topo.stop_child(clients);

    // Then everything is gone.
    assert!(!topo.gw_link().contains("xdp"));
    assert!(!Path::new(&format!("/sys/fs/bpf/xgate/{ifname}")).exists());
    assert!(!Path::new(&format!("/run/xgate/{ifname}.json")).exists());
    let cg = dataplane::bpf::cgroup2_root()
        .unwrap()
        .join(format!("xgate-{ifname}"));
    assert!(!cg.exists(), "{cg:?} left behind");
}

/// Keep-alive clients of `/v` for the reload test, in the client netns: until the file argv[3]
/// exists, 20 requests per connection; a request fails unless it gets 200 with a body the
/// configurations could give (argv[4..]). Prints `requests OK FAILED` and the bodies seen.
const RELOAD_CLIENT: &str = r#"
import http.client, os, sys
gw, port, stop, bodies = sys.argv[1], int(sys.argv[2]), sys.argv[3], [b.encode() for b in sys.argv[4:]]
ok = failed = 0
seen = set()
while not os.path.exists(stop):
    c = http.client.HTTPConnection(gw, port, timeout=5)
    try:
        for _ in range(20):
            c.request("GET", "/v")
            r = c.getresponse()
            body = r.read()
            if r.status == 200 and body in bodies:
                ok += 1
                seen.add(body.decode())
            else:
                failed += 1
                print("unexpected", r.status, body[:40], file=sys.stderr, flush=True)
    except Exception as e:
        failed += 1
        print("error", repr(e), file=sys.stderr, flush=True)
    finally:
        c.close()
print("requests", ok, failed, ",".join(sorted(seen)), flush=True)
"#;

/// Issue 6's reload: `xgate reload` (SIGHUP) under keep-alive load on both paths swaps the
/// routes and limits with zero failed requests; a file with an error, or with a change only
/// a restart can make, is refused with the key named, and the running routes stay.
#[test]
fn reload_under_load_swaps_routes_without_a_failed_request_and_refuses_bad_files() {
    if !is_root() {
        eprintln!("skipping reload_under_load_swaps_routes_without_a_failed_request_and_refuses_bad_files: needs root");
        return;
    }
    const ON: u16 = 18188;
    const OFF: u16 = 18189;
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let file = std::env::temp_dir().join(format!("{}.toml", topo.name));
    let config = |body: &str, extra: &str| {
        format!(
            "interface = \"{ifname}\"\nshutdown_grace_secs = 2\n\n[[ports]]\nport = {ON}\nbypass = true\n\n[[ports]]\nport = {OFF}\n{extra}\n[http]\nheader_timeout_secs = 5\n\n[[app.routes]]\npath = \"/v\"\nbody = \"{body}\"\n"
        )
    };
    std::fs::write(&file, config("one", "")).expect("config file");
    let file_arg = file.to_str().expect("utf-8 path").to_string();
    let gw_ns = topo.server_ns.clone();
    let (gw, pid) = start_xgate(&mut topo, &["--config", &file_arg, "--netns", &gw_ns]);
    for port in [ON, OFF] {
        assert_eq!(curl(&topo, port, "/v"), "one");
    }
    let reload = || {
        out({
            let mut c = xgate();
            c.args(["reload", "--iface", &ifname]);
            c
        })
    };

    let stop = std::env::temp_dir().join(format!("{}.stop", topo.name));
    let _ = std::fs::remove_file(&stop);
    let loops: Vec<Child> = [ON, ON, OFF]
        .iter()
        .map(|port| {
            Command::new("ip")
                .args(["netns", "exec", &topo.client_ns, "/usr/bin/python3", "-c"])
                .arg(RELOAD_CLIENT)
                .args([GW_IP, &port.to_string()])
                .arg(&stop)
                .args(["one", "two"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("reload client")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    // A good file: accepted, and both paths answer with the new route.
    std::fs::write(&file, config("two", "")).expect("config file");
    let o = reload();
    assert!(o.status.success(), "reload: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains("accepted"), "{}", text(&o.stdout));
    std::thread::sleep(Duration::from_millis(1500));
    for port in [ON, OFF] {
        assert_eq!(
            curl(&topo, port, "/v"),
            "two",
            "port {port} after the reload"
        );
    }

    // A file with an error: refused, named, the running routes stay.
    std::fs::write(
        &file,
        config("three", "").replace("header_timeout_secs = 5", "header_timeout_secs = 0"),
    )
    .expect("config file");
    let o = reload();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("http.header_timeout_secs"),
        "{}",
        text(&o.stderr)
    );
    // A change only a restart can make: refused, named.
    std::fs::write(&file, config("three", "[tcp]\nmss = 1400\n")).expect("config file");
    let o = reload();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("[tcp]: changed"),
        "{}",
        text(&o.stderr)
    );
    for port in [ON, OFF] {
        assert_eq!(
            curl(&topo, port, "/v"),
            "two",
            "port {port} after refused reloads"
        );
    }
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(&stop, b"").expect("stop file");
    let mut total = 0;
    for l in loops {
        let o = l.wait_with_output().expect("reload client");
        let line = text(&o.stdout);
        eprintln!("reload client: {}", line.trim());
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.first(), Some(&"requests"), "{line}");
        let (ok, failed): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        assert_eq!(failed, 0, "failed requests across the reloads: {line}");
        assert!(
            f.get(3) == Some(&"one,two"),
            "saw both configurations: {line}"
        );
        total += ok;
    }
    assert!(total > 100, "only {total} requests");
    settle();
    let s = status(&ifname);
    assert!(
        s["pollers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| num(p, "reloads") == 1),
        "{s}"
    );
    assert_eq!(num(&s["kernel_path"], "reloads"), 1, "{s}");
    assert_eq!(
        (
            num(&s["reload"], "requested"),
            num(&s["reload"], "accepted")
        ),
        (3, 1)
    );
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&stop);
}

/// Sends `count` SYNs with a wrong TCP checksum from the client netns to `port` (a raw
/// socket: the kernel writes the IP header, the TCP header is ours).
const BAD_SYNS: &str = r#"
import socket, struct, sys
gw, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(count):
    hdr = struct.pack("!HHIIBBHHH", 40000 + i % 1000, port, i, 0, 5 << 4, 0x02, 65535, 0xdead, 0)
    s.sendto(hdr, (gw, 0))
"#;

/// Issue 6's logging: `[log] format = "json"` gives one JSON object per line on stderr with
/// the events an operator needs (serving, reload refused, draining); per-packet events (a
/// refused frame, at debug level) are rate-limited, the held-back count reported.
#[test]
fn the_log_is_structured_and_per_packet_events_are_rate_limited() {
    if !is_root() {
        eprintln!(
            "skipping the_log_is_structured_and_per_packet_events_are_rate_limited: needs root"
        );
        return;
    }
    const PORT: u16 = 18192;
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let file = std::env::temp_dir().join(format!("{}.toml", topo.name));
    let config = format!(
        "interface = \"{ifname}\"\nshutdown_grace_secs = 1\n[[ports]]\nport = {PORT}\nbypass = true\n[log]\nformat = \"json\"\nlevel = \"info,dataplane::afxdp=debug\"\n"
    );
    std::fs::write(&file, &config).expect("config file");
    let mut child = xgate()
        .args([
            "run",
            "--config",
            file.to_str().unwrap(),
            "--netns",
            &topo.server_ns,
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning xgate run");
    let pid = child.id();
    let out = lines_of(child.stdout.take().expect("piped"));
    let err = {
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        rx
    };
    topo.children.push(child);
    let gw = topo.children.len() - 1;
    loop {
        let line = out.recv_timeout(Duration::from_secs(20)).expect("ready");
        if line.starts_with("xgate: ready") {
            break;
        }
    }
    assert_eq!(curl(&topo, PORT, "/health"), "ok");
    // Two bursts of 300 refused frames, 1.5 s apart.
    for _ in 0..2 {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.client_ns,
                "/usr/bin/python3",
                "-c",
                BAD_SYNS,
            ])
            .args([GW_IP, &PORT.to_string(), "300"])
            .output()
            .expect("bad SYNs");
        assert!(o.status.success(), "{}", text(&o.stderr));
        std::thread::sleep(Duration::from_millis(1500));
    }
    // A refused reload is logged as a warning.
    std::fs::write(&file, config.replace("bypass = true", "bypass = false")).expect("config");
    let o = out_of(&ifname);
    assert!(!o.status.success());
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");

    let events: Vec<Value> = err
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let msg = |e: &Value| e["fields"]["message"].as_str().unwrap_or("").to_string();
    let find = |m: &str| events.iter().find(|e| msg(e).starts_with(m));
    let serving = find("serving").expect("a serving event");
    assert_eq!(serving["level"], "INFO");
    assert_eq!(serving["fields"]["ifname"], ifname);
    let refused = find("reload refused").expect("a reload-refused event");
    assert_eq!(refused["level"], "WARN");
    assert!(refused["fields"]["reason"]
        .as_str()
        .unwrap()
        .contains("[[ports]]"));
    assert!(find("draining").is_some());
    let frames: Vec<&Value> = events
        .iter()
        .filter(|e| msg(e) == "frame refused")
        .collect();
    assert!(
        frames
            .iter()
            .all(|e| e["fields"]["reason"] == "bad_checksum"),
        "{frames:?}"
    );
    // 600 refused frames, at most 10 lines a second per poller (the topology's veth has two
    // RX queues): two bursts give at most 40 lines, and a line of the second burst reports
    // what the first held back.
    assert!(
        (2..=40).contains(&frames.len()),
        "{} frame-refused lines for 600 refused frames",
        frames.len()
    );
    assert!(
        frames
            .iter()
            .any(|e| e["fields"]["suppressed"].as_u64().unwrap_or(0) >= 100),
        "no line reported the held-back events: {frames:?}"
    );
    let _ = std::fs::remove_file(&file);
}

fn out_of(ifname: &str) -> Output {
    out({
        let mut c = xgate();
        c.args(["reload", "--iface", ifname]);
        c
    })
}

/// What the kernel drops at an AF_XDP socket is on the metrics page and in the status: with
/// the gateway stopped (SIGSTOP), a burst of 6,000 SYNs to the bypass port overflows the RX
/// rings of its two queues (2,048 descriptors each), and after SIGCONT the drops the kernel
/// counted appear under `xgate_bypass_socket_drops_total` and in the status; the port then
/// serves again.
#[test]
fn a_stopped_poller_shows_the_kernels_socket_drops() {
    if !is_root() {
        eprintln!("skipping a_stopped_poller_shows_the_kernels_socket_drops: needs root");
        return;
    }
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let (gw, pid) = start_both_paths(&mut topo, "1", &[]);
    assert_eq!(curl(&topo, BYPASS, "/health"), "ok");
    // Every queue's drops but the invalid-descriptor counts (which must stay zero).
    let drops = |scrape: &prometheus_parse::Scrape| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "xgate_bypass_socket_drops_total")
            .filter(|s| {
                !s.labels
                    .get("reason")
                    .unwrap_or("")
                    .ends_with("invalid_desc")
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{other:?}"),
            })
            .sum()
    };
    settle();
    assert_eq!(drops(&scrape_metrics(&topo)), 0.0, "drops before the burst");

    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    let burst = format!(
        "import resource, socket, time\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))\n\
         held = []\n\
         for _ in range(6000):\n\
         \x20   s = socket.socket()\n\
         \x20   s.setblocking(False)\n\
         \x20   s.connect_ex(('{GW_IP}', {BYPASS}))\n\
         \x20   held.append(s)\n\
         time.sleep(0.5)\n"
    );
    let o = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "python3", "-c", &burst])
        .output()
        .expect("running python3");
    // SAFETY: as above; the child is stopped, not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGCONT) }, 0);
    assert!(o.status.success(), "burst: {}", text(&o.stderr));

    // The counters are read from the kernel once a second and published with the rest.
    let start = Instant::now();
    let seen = loop {
        std::thread::sleep(Duration::from_millis(500));
        let n = drops(&scrape_metrics(&topo));
        if n > 0.0 || start.elapsed() > Duration::from_secs(10) {
            break n;
        }
    };
    eprintln!("socket drops after the burst: {seen}");
    let s = status(&ifname);
    let pollers = s["pollers"].as_array().expect("pollers");
    assert_eq!(pollers.len(), 2, "{s}");
    // At least what two full rings cannot hold; at most the burst.
    assert!(
        (1904.0..=6000.0).contains(&seen),
        "6,000 SYNs into two 2,048-descriptor rings while stopped: {seen} dropped"
    );
    let mut in_status = 0;
    for p in pollers {
        in_status += num(p, "socket_rx_ring_full")
            + num(p, "socket_rx_fill_ring_empty")
            + num(p, "socket_rx_dropped");
        assert_eq!(num(p, "socket_rx_invalid_descs"), 0, "{p}");
        assert_eq!(num(p, "socket_tx_invalid_descs"), 0, "{p}");
    }
    assert!(in_status as f64 >= seen, "{s}");
    assert_eq!(curl(&topo, BYPASS, "/health"), "ok");

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");
}

/// Issue 13's access log through the binary: one line per request on both paths, with the
/// client's address, the port, the path and the status; SIGUSR1 after the file was renamed
/// (as logrotate does) makes the gateway write to a new file at the same path; the counts
/// are on the metrics page; nothing is left behind.
#[test]
fn the_access_log_has_a_line_per_request_on_both_paths_and_reopens_on_sigusr1() {
    if !is_root() {
        eprintln!("skipping the_access_log_has_a_line_per_request: needs root");
        return;
    }
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let tmp = TempDir::new(&format!("xgate-access-{}", topo.name));
    let dir = &tmp.0;
    let log = dir.join("access.log");
    let (gw, pid) = start_both_paths(&mut topo, "1", &["--access-log", log.to_str().unwrap()]);
    let log_lines = |path: &Path, want: usize| -> Vec<String> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= want || start.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(curl(&topo, BYPASS, "/health"), "ok");
    assert_eq!(curl(&topo, BYPASS, "/bytes/5000").len(), 5000);
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "curl",
            "-sS",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code}", "--max-time", "10"])
        .arg(format!("http://{GW_IP}:{KERNEL}/nowhere?x=1"))
        .output()
        .expect("running curl");
    assert_eq!(text(&o.stdout), "404");

    let lines = log_lines(&log, 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // TIME CLIENT "METHOD TARGET VERSION" STATUS IN OUT SECONDS PATH PORT UPSTREAM SECONDS
    // TLS SERVER_NAME
    let fields = |l: &str| -> Vec<String> {
        let (before, rest) = l.split_once(" \"").expect("a quoted request line");
        let (request, after) = rest.split_once("\" ").expect("its closing quote");
        let mut f: Vec<String> = before.split(' ').map(str::to_string).collect();
        f.push(request.to_string());
        f.extend(after.split(' ').map(str::to_string));
        f
    };
    let want = [
        ("GET /health HTTP/1.1", "200", "bypass", BYPASS),
        ("GET /bytes/5000 HTTP/1.1", "200", "bypass", BYPASS),
        ("GET /nowhere?x=1 HTTP/1.1", "404", "kernel", KERNEL),
    ];
    for (line, (request, status, path, port)) in lines.iter().zip(want) {
        let f = fields(line);
        assert_eq!(f.len(), 13, "{line}");
        assert!(f[0].ends_with('Z') && f[0].len() == 27, "{line}");
        assert!(
            f[1].starts_with(&format!("{}:", common::CLIENT_IP)),
            "{line}"
        );
        assert_eq!(
            (f[2].as_str(), f[3].as_str(), f[7].as_str(), f[8].as_str()),
            (request, status, path, port.to_string().as_str()),
            "{line}"
        );
        assert_eq!((f[9].as_str(), f[10].as_str()), ("-", "-"), "{line}");
        assert_eq!(
            (f[11].as_str(), f[12].as_str()),
            ("-", "-"),
            "no TLS: {line}"
        );
    }
    // The 5000-byte answer: its body and its head.
    let out: u64 = fields(&lines[1])[5].parse().unwrap();
    assert!((5000..6000).contains(&out), "{}", lines[1]);

    // logrotate: rename, then SIGUSR1; the next lines go to a new file at the same path.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGUSR1) }, 0);
    let start = Instant::now();
    while !log.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&topo, KERNEL, "/health"), "ok");
    assert_eq!(curl(&topo, BYPASS, "/health"), "ok");
    let new = log_lines(&log, 2);
    assert_eq!(new.len(), 2, "{new:#?}");
    assert!(new
        .iter()
        .all(|l| l.contains("\"GET /health HTTP/1.1\" 200 ")));
    assert_eq!(
        log_lines(&rotated, 3).len(),
        3,
        "the old file keeps its lines"
    );

    settle();
    let scrape = scrape_metrics(&topo);
    assert_eq!(
        metric(
            &scrape,
            "xgate_access_log_lines_total",
            &[("result", "written")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            &scrape,
            "xgate_access_log_lines_total",
            &[("result", "dropped")]
        ),
        0.0
    );
    assert_eq!(metric(&scrape, "xgate_access_log_reopens_total", &[]), 1.0);
    let s = status(&ifname);
    assert_eq!(num(&s["access_log"], "written"), 5, "{s}");

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");
}

/// The access log never slows the serving paths: its file is a pipe nobody reads (a disk
/// that stalls), so the writer blocks once the pipe is full. wrk keeps being answered on both
/// paths without an error, the records that find the small buffers full are counted as
/// dropped, and SIGTERM still ends the gateway promptly.
#[test]
fn a_stalled_access_log_drops_and_counts_and_never_stops_serving() {
    if !is_root() || Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("skipping a_stalled_access_log_drops_and_counts: needs root and wrk");
        return;
    }
    let mut topo = Topology::create();
    let tmp = TempDir::new(&format!("xgate-stall-{}", topo.name));
    let dir = &tmp.0;
    let fifo = dir.join("access.pipe");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    // The read end, held open and never read: writes block once the pipe's buffer is full.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let file = dir.join("xgate.toml");
    std::fs::write(
        &file,
        format!(
            "[access_log]\npath = \"{}\"\nbuffer_records = 16\n",
            fifo.display()
        ),
    )
    .unwrap();
    let (gw, pid) = start_both_paths(&mut topo, "1", &["--config", file.to_str().unwrap()]);
    for port in [BYPASS, KERNEL] {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.client_ns,
                "wrk",
                "-t1",
                "-c4",
                "-d2s",
            ])
            .arg(format!("http://{GW_IP}:{port}/health"))
            .output()
            .expect("running wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            !text.contains("Non-2xx") && !text.contains("Socket errors"),
            "port {port}: {text}"
        );
        let requests: u64 = text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("wrk's count: {text}"));
        // Far more lines than a 64 KiB pipe and the buffers hold.
        assert!(requests > 2_000, "port {port}: {requests} requests");
    }
    settle();
    let scrape = scrape_metrics(&topo);
    let written = metric(
        &scrape,
        "xgate_access_log_lines_total",
        &[("result", "written")],
    );
    let dropped = metric(
        &scrape,
        "xgate_access_log_lines_total",
        &[("result", "dropped")],
    );
    eprintln!("stalled access log: {written} lines written, {dropped} dropped");
    assert!(dropped > 1_000.0, "{dropped} dropped");
    assert!(written < 2_000.0, "a 64 KiB pipe took {written} lines");

    let t = Instant::now();
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let st = wait_exit(&mut topo.children[gw], Duration::from_secs(20));
    assert!(st.success(), "xgate run exited with {st:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "exit took {:?}",
        t.elapsed()
    );
}
