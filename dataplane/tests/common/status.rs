//! `xgate status --json` of a running gateway, and the few ways the tests read it.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

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

/// The gateway's own counters are refreshed twice a second.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(700));
}
