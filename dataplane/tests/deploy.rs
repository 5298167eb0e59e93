//! The deployment files hold: `deploy/xgate@.service` passes `systemd-analyze verify` with no
//! warning (when systemd-analyze is installed), and the capability set it grants is enough
//! for `xgate run --cgroup self` to serve the bypass path, while one capability less is
//! refused up front with the missing one named (root: a veth topology, as the unit would run
//! it: uid 0 with a bounded capability set, inside an existing cgroup, no CAP_SYS_ADMIN).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{is_root, lines_of, Topology, GW_IP};

fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/xgate@.service")
}

/// The capabilities the unit's `CapabilityBoundingSet=` grants, as setpriv spells them
/// (`net_admin`, ...).
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(unit_file()).expect("the unit file");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet= in the unit");
    line.split_whitespace()
        .map(|c| c.strip_prefix("CAP_").unwrap_or(c).to_ascii_lowercase())
        .collect()
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("xgate-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The unit as installed, but pointing at the binary under test (verify checks that
    // every Exec command exists).
    let unit = std::fs::read_to_string(unit_file())
        .unwrap()
        .replace("/usr/local/bin/xgate", env!("CARGO_BIN_EXE_xgate"));
    let path = dir.join("xgate@eth1.service");
    std::fs::write(&path, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "systemd-analyze verify: {err}");
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned: {err}"
    );
}

/// Runs `xgate run` as the unit does, inside the test cgroup and the gateway netns, with only
/// `caps` in its bounding set; returns the child (stdout piped).
fn run_bounded(topo: &Topology, caps: &[String], port: u16) -> std::process::Child {
    let bounding = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    // sh joins the test cgroup, nsenter enters the netns (as full root: entering needs
    // CAP_SYS_ADMIN, which the unit does not have: under systemd the interface is in the
    // host's netns), setpriv drops to the bounding set for good.
    let script = format!(
        "echo $$ > {procs} && exec nsenter --net=/var/run/netns/{ns} setpriv --bounding-set={bounding} --inh-caps=-all -- {xgate} run --iface {ifname} --port {port} --bypass {port} --cgroup self",
        procs = topo.cgroup.join("cgroup.procs").display(),
        ns = topo.server_ns,
        xgate = env!("CARGO_BIN_EXE_xgate"),
        ifname = topo.server_if,
    );
    Command::new("sh")
        .args(["-c", &script])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning xgate run")
}

#[test]
fn the_units_capabilities_serve_the_bypass_and_one_less_is_named() {
    if !is_root() {
        eprintln!("SKIPPED: the capability test needs root (netns, XDP, cgroups)");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err()
        || Command::new("nsenter").arg("--version").output().is_err()
    {
        eprintln!("SKIPPED: setpriv or nsenter is not installed");
        return;
    }
    const PORT: u16 = 18301;
    let caps = unit_capabilities();
    assert!(
        !caps.iter().any(|c| c == "sys_admin"),
        "the unit grants CAP_SYS_ADMIN: {caps:?}"
    );
    let mut topo = Topology::create();

    // One less: refused before anything is attached, the missing one named.
    let without: Vec<String> = caps.iter().filter(|c| *c != "perfmon").cloned().collect();
    let o = run_bounded(&topo, &without, PORT)
        .wait_with_output()
        .expect("xgate run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("lacks capabilities: CAP_PERFMON"),
        "without CAP_PERFMON: {err}"
    );
    assert!(!topo.gw_link().contains("xdp"), "attached before the check");

    // The unit's set: serves, through the bypass.
    let mut child = run_bounded(&topo, &caps, PORT);
    let out = lines_of(child.stdout.take().expect("piped"));
    let start = Instant::now();
    loop {
        match out.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("xgate: ready") => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let o = child.wait_with_output().expect("xgate run");
                panic!(
                    "not ready with the unit's capabilities {caps:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20));
    }
    let pid = child.id();
    topo.children.push(child);
    let gw = topo.children.len() - 1;
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "curl",
            "-sS",
            "--max-time",
            "10",
        ])
        .arg(format!("http://{GW_IP}:{PORT}/health"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok", "{o:?}");
    let status = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args(["status", "--json", "--iface", &topo.server_if])
        .output()
        .expect("xgate status");
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let port = s["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == PORT)
        .expect("the port");
    assert!(port["redirected"].as_u64().unwrap() > 0, "{port}");
    assert_eq!(port["listener_tagged"], true, "{port}");
    // SAFETY: kill(2) on the pid of the child we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = topo.children[gw].try_wait().expect("waiting") {
            break st;
        }
        assert!(Instant::now() < deadline, "xgate did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "{st:?}");
    assert!(!topo.gw_link().contains("xdp"));
    assert!(!Path::new(&format!("/sys/fs/bpf/xgate/{}", topo.server_if)).exists());
}
