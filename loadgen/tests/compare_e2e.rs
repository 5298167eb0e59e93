//! Root-only: `loadgen compare --quick` end to end on each network — the veth topology and
//! the lab, xgate (both paths) and nginx started, pinned and stopped, every scenario measured
//! with every response checked, where the CPU went recorded, and the results written (JSON
//! that parses back, a markdown summary with the ratios, SVG charts); and the proxy scenarios
//! through xgate's two paths, nginx and HAProxy to one origin. Says nothing about speed: the
//! quick run's figures are not benchmarks. Needs the xgate binary beside loadgen; builds it
//! when missing.

mod gateway;

use std::path::PathBuf;
use std::process::Command;

use gateway::{is_root, xgate_beside};

#[test]
fn quick_comparison_writes_every_result_and_no_request_fails() {
    if !is_root() {
        eprintln!("skipping quick_comparison_writes_every_result_and_no_request_fails: needs root");
        return;
    }
    let (out, stderr, _) = run_compare(
        "loadgen-compare-test",
        &[
            "--network",
            "veth",
            "--rate",
            "2000",
            "--scenario",
            "keep-alive",
            "--scenario",
            "open-loop",
            "--scenario",
            "echo-1k",
        ],
    );

    let summary = std::fs::read_to_string(out.join("veth.md")).expect("veth.md");
    for needle in [
        "| keep-alive GET /health, 64 conns |",
        "| POST /echo 1 KiB, 64 conns |",
        "bypass / kernel",
        "bypass / nginx",
        "Open loop at 2000 requests/s",
        "0 failed request(s) in the whole run",
        "Topology: veth pair between two network namespaces",
        "client veth: generic-receive-offload on",
        "## Where the CPU went",
    ] {
        assert!(summary.contains(needle), "{needle:?} not in:\n{summary}");
    }
    let runs: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .expect("runs/")
        .map(|e| e.unwrap().path())
        .collect();
    let json = runs
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON record");
    let record: loadgen::compare::report::RunRecord =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).expect("the record parses");
    // 3 servers x 3 scenarios, one repetition each.
    assert_eq!(record.measurements.len(), 9);
    // The offloads every target met, as ethtool read them: the client's segmentation and
    // checksum offloads off (AF_XDP needs whole frames), the server's left at veth's default.
    let topology = record
        .config
        .topology
        .as_ref()
        .expect("the topology is recorded");
    assert_eq!(
        topology.client_offloads.get("tcp-segmentation-offload"),
        Some(&false)
    );
    assert_eq!(
        topology.client_offloads.get("tx-checksumming"),
        Some(&false)
    );
    assert_eq!(
        topology.server_offloads.get("tcp-segmentation-offload"),
        Some(&true)
    );
    assert_eq!(topology.server_offloads.len(), 6);
    for m in &record.measurements {
        assert!(m.client.requests > 0 && m.client.errors == 0, "{m:?}");
        assert!(m.cpu.busy_cpu_secs > 0.0, "{m:?}");
        assert!(m.command.contains("loadgen run --addr"), "{m:?}");
        let a = m.attribution.as_ref().expect("where the CPU went");
        assert!(a.server.process_secs > 0.0, "{m:?}");
        assert!(m.server_core_us_per_request > 0.0, "{m:?}");
    }
    for chart in ["veth-throughput.svg", "veth-latency.svg"] {
        let svg = std::fs::read_to_string(out.join("charts").join(chart)).expect(chart);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{chart}"
        );
    }
    namespaces_are_gone(&stderr);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The lab: each side receives in a NAPI thread on its own core, so the server's receive is
/// found on the server's core and the client's on the client's, for every target.
#[test]
fn quick_lab_comparison_attributes_each_side_its_own_receive() {
    if !is_root() {
        eprintln!("skipping quick_lab_comparison_attributes_each_side_its_own_receive: needs root");
        return;
    }
    let (out, stderr, _) = run_compare(
        "loadgen-lab-test",
        &["--network", "lab", "--scenario", "keep-alive"],
    );
    let summary = std::fs::read_to_string(out.join("lab.md")).expect("lab.md");
    for needle in [
        "# xgate lab comparison",
        "Topology: lab: veth pair",
        "## Server core CPU per request (µs)",
        "| keep-alive, closed loop |",
        "| keep-alive: requests/s per server core |",
        "## Where the CPU went",
        "## The performance goals (issue 12)",
        "0 failed request(s) in the whole run",
    ] {
        assert!(summary.contains(needle), "{needle:?} not in:\n{summary}");
    }
    let json = std::fs::read_dir(out.join("runs"))
        .expect("runs/")
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON record");
    let record: loadgen::compare::report::RunRecord =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).expect("the record parses");
    // 3 targets x (closed loop + 3 rates), one repetition each.
    assert_eq!(record.measurements.len(), 12);
    assert_eq!(record.config.lab_rates.len(), 1);
    for m in &record.measurements {
        assert!(m.client.requests > 0 && m.client.errors == 0, "{m:?}");
        let a = m.attribution.as_ref().expect("where the CPU went");
        // Each side's receive ran in its own NAPI thread, bound to its own core.
        assert!(
            a.server.napi_secs > 0.0,
            "{:?} {:?}: {a:?}",
            m.target,
            m.offered
        );
        assert!(
            a.client.napi_secs > 0.0,
            "{:?} {:?}: {a:?}",
            m.target,
            m.offered
        );
        assert!(a.server.process_secs > 0.0, "{a:?}");
        assert!(m.server_core_us_per_request > 0.0, "{m:?}");
    }
    for chart in ["lab-server-core-cost.svg", "lab-server-core-capacity.svg"] {
        let svg = std::fs::read_to_string(out.join("charts").join(chart)).expect(chart);
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{chart}");
    }
    namespaces_are_gone(&stderr);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The proxy scenarios: every request through each of the four proxies reached the origin
/// (a request not forwarded is a 404, a failure), the origin's time is counted apart from
/// the server's, and nothing the run started is left.
#[test]
fn quick_proxy_comparison_forwards_through_every_proxy() {
    if !is_root() {
        eprintln!("skipping quick_proxy_comparison_forwards_through_every_proxy: needs root");
        return;
    }
    let (out, stderr, pid) = run_compare(
        "loadgen-proxy-test",
        &["--network", "veth", "--scenario", "proxy", "--no-wrk"],
    );
    // Its own summary, beside where the gateway comparison's goes.
    let summary = std::fs::read_to_string(out.join("proxy-veth.md")).expect("proxy-veth.md");
    assert!(!out.join("veth.md").exists());
    let chart = out.join("charts").join("proxy-veth-throughput.svg");
    assert!(chart.is_file(), "{}", chart.display());
    for needle in [
        "| proxied keep-alive GET (2 B), 64 conns |",
        "| proxied POST 1 KiB (2 B answer), 64 conns |",
        "| proxied GET 64 KiB, 64 conns |",
        "| bypass / kernel | bypass / nginx | bypass / haproxy |",
        "**Proxy scenarios** (issue 13)",
        " origin |",
        "0 failed request(s) in the whole run",
    ] {
        assert!(summary.contains(needle), "{needle:?} not in:\n{summary}");
    }
    let json = std::fs::read_dir(out.join("runs"))
        .expect("runs/")
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON record");
    let record: loadgen::compare::report::RunRecord =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).expect("the record parses");
    // 4 proxies x 3 scenarios, one repetition each.
    assert_eq!(record.measurements.len(), 12);
    assert!(record.config.origin_core.is_some());
    assert_ne!(record.config.origin_core, Some(record.config.server_core));
    for m in &record.measurements {
        assert!(m.scenario.is_proxy(), "{m:?}");
        assert!(m.client.requests > 0 && m.client.errors == 0, "{m:?}");
        let a = m.attribution.as_ref().expect("where the CPU went");
        assert!(a.server.process_secs > 0.0, "{:?}: {a:?}", m.target);
        // The origin answered this run, and its time is its own.
        assert!(
            a.origin_secs > 0.0,
            "{:?} {:?}: {a:?}",
            m.target,
            m.scenario
        );
    }
    // The origin and the proxies (whose files live in the run's work directory) are gone.
    let work = format!("loadgen-compare-{pid}");
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&work),
            "a process of the run left behind: {}",
            String::from_utf8_lossy(&cmdline)
        );
    }
    namespaces_are_gone(&stderr);
    std::fs::remove_dir_all(&out).unwrap();
}

/// `loadgen compare --quick` with `args`, its results in a fresh directory named after `what`
/// and this process; asserts it succeeded and returns the directory, its stderr and its PID
/// (which names its work directory).
fn run_compare(what: &str, args: &[&str]) -> (PathBuf, String, u32) {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let xgate = xgate_beside(&loadgen);
    let out = std::env::temp_dir().join(format!("{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let child = Command::new(&loadgen)
        .args(["compare", "--quick"])
        .args(args)
        .arg("--out")
        .arg(&out)
        .arg("--xgate")
        .arg(&xgate)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running loadgen compare");
    let pid = child.id();
    let o = child.wait_with_output().expect("loadgen compare's output");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "loadgen compare failed:\n{stderr}\n{stdout}"
    );
    (out, stderr, pid)
}

/// The run's namespaces (named on stderr), their lock files and their NAPI threads are gone.
fn namespaces_are_gone(stderr: &str) {
    let names: Vec<&str> = stderr
        .lines()
        .find_map(|l| l.split_once("; netns ").map(|(_, n)| n))
        .expect("the run names its namespaces")
        .split(" / ")
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&ns.stdout);
    for n in &names {
        assert!(
            !std::path::Path::new(&format!("/run/xgate/{n}.lock")).exists(),
            "the lock file of {n} left behind"
        );
    }
    for n in names {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(n)),
            "{n} left behind"
        );
    }
}
