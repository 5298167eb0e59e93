//! What a running gateway reports: `xgate status --json`, its admin endpoint's `/metrics`, and
//! the few ways the tests read them.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{Topology, GW_IP};

/// The gateway's status on `ifname`, parsed; panics with xgate's message when it fails.
pub fn status(ifname: &str) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args(["status", "--json", "--iface", ifname])
        .output()
        .expect("running xgate status");
    assert!(
        o.status.success(),
        "status: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("status --json is JSON")
}

/// One port's entry of a status.
pub fn port(s: &Value, port: u16) -> &Value {
    s["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == port)
        .unwrap_or_else(|| panic!("port {port} in {s}"))
}

/// A counter of a status object; panics naming it when it is missing.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A counter summed over every poller of a status (`pollers[].key`).
pub fn pollers_sum(s: &Value, key: &str) -> u64 {
    s["pollers"]
        .as_array()
        .expect("pollers")
        .iter()
        .map(|p| num(p, key))
        .sum()
}

/// The gateway's own counters are refreshed twice a second.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(700));
}

/// `GET /metrics` of the admin endpoint on `admin` from the client netns, parsed by an independent
/// parser of the Prometheus text format; the `Content-Type` is checked too.
pub fn scrape_metrics(topo: &Topology, admin: u16) -> prometheus_parse::Scrape {
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "curl",
            "-sS",
            "--fail",
            "-i",
        ])
        .args(["--max-time", "10"])
        .arg(format!("http://{GW_IP}:{admin}/metrics"))
        .output()
        .expect("running curl");
    assert!(
        o.status.success(),
        "scrape: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = String::from_utf8_lossy(&o.stdout);
    let (head, body) = page.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("a valid metrics page")
}

/// A counter's or gauge's value in `scrape`.
pub fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("{name} {labels:?} not on the page"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

/// `rounds` times `xgate bypass off` then `on` for `port` while clients run: after each
/// switch, the path switched to takes the new connections (the kernel path's accepted count
/// grows once off, the SYNs steered once on). `what` names the clients in the messages.
pub fn switch_rounds(ifname: &str, port_no: u16, rounds: usize, what: &str) {
    let switch = |how: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_xgate"))
            .args(["bypass", how, &port_no.to_string(), "--drain-secs", "1"])
            .args(["--iface", ifname])
            .output()
            .expect("running xgate bypass");
        assert!(
            o.status.success(),
            "bypass {how}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(800));
        settle();
        port(&status(ifname), port_no).clone()
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut last = port(&status(ifname), port_no).clone();
    for round in 0..rounds {
        let off = switch("off");
        assert!(
            num(&off, "kernel_connections_total") > num(&last, "kernel_connections_total"),
            "round {round}: the kernel path takes new {what} connections once off: {off}"
        );
        let on = switch("on");
        assert!(
            num(&on, "syns_steered") > num(&off, "syns_steered"),
            "round {round}: the bypass takes new {what} connections once on: {on}"
        );
        last = on;
    }
}

/// The requests answered by client loops that each printed `requests OK FAILED` at their
/// end (their output, in order): none failed, nothing on their stderr.
pub fn client_loop_totals(outputs: &[std::process::Output], what: &str) -> u64 {
    let mut answered = 0;
    for o in outputs {
        let line = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("count"))
            .collect();
        assert_eq!(f.len(), 2, "client loop said {line:?}");
        assert_eq!(f[1], 0, "failed {what} requests; curl said: {stderr}");
        assert!(stderr.trim().is_empty(), "curl: {stderr}");
        answered += f[0];
    }
    answered
}
