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
