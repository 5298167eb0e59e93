//! Root-only proof that every RX queue's poller serves connections (issue 15, item 3): `xgate
//! run` on the two-queue veth pair of tests/common, no `cores` configured; it says which CPU
//! each poller got (one per queue on this machine's CPUs), a few hundred connections from the
//! client spread over both queues (the client's transmit queue, hashed per flow, is the
//! queue they arrive on), both queues establish and answer some, and the per-queue counters
//! add up to the gateway's totals and to what the client did. The kill -9 fail-safe and the
//! live switch run on these two queues too (`cli_e2e.rs`, `ipv6_e2e.rs`).

mod common;

use std::process::Command;

use common::status::{num, port, settle, status};
use common::{is_root, spawn_xgate, Topology, GW_IP};
use dataplane::gateway::cores::{self, CpuSet};

const BYPASS: u16 = 18480;

/// Opens `n` connections one after another, one `GET /health` on each; prints `ok=N fail=N`.
const CONNECTIONS_SCRIPT: &str = r#"
import http.client, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = fail = 0
for _ in range(n):
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/health")
        r = c.getresponse()
        if r.status == 200 and r.read() == b"ok":
            ok += 1
        else:
            fail += 1
        c.close()
    except Exception as e:
        fail += 1
        print("error", repr(e), file=sys.stderr)
print("ok=%d fail=%d" % (ok, fail))
"#;

#[test]
fn both_queues_serve_connections_and_their_counters_add_up() {
    if !is_root() {
        eprintln!("skipping both_queues_serve_connections_and_their_counters_add_up: needs root");
        return;
    }
    let mut topo = Topology::create();
    let ifname = topo.server_if.clone();
    let bypass = BYPASS.to_string();
    let ns = topo.server_ns.clone();
    let args = [
        "--iface", &ifname, "--netns", &ns, "--port", &bypass, "--bypass", &bypass,
    ];
    let (_, said) = spawn_xgate(&mut topo, &args);
    // The choice, as the operator reads it: one CPU per queue from the process's CPUs.
    // What the gateway's own rule picks from this process's CPUs (the test runs where the
    // gateway does: same affinity and cpuset).
    let cpus = CpuSet::of_interface(&topo.server_if).expect("the process's CPUs");
    let choice = cores::choose(2, &cpus, None).expect("some CPU");
    let pollers = said
        .iter()
        .find_map(|l| l.strip_prefix("xgate: pollers: "))
        .unwrap_or_else(|| panic!("no pollers line in {said:?}"));
    let expected = format!(
        "queue 0 on CPU {}, queue 1 on CPU {}",
        choice.cores[0], choice.cores[1]
    );
    assert_eq!(pollers, expected, "{said:?}");

    const N: u64 = 300;
    let o = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "python3", "-c"])
        .arg(CONNECTIONS_SCRIPT)
        .args([GW_IP, &bypass, &N.to_string()])
        .output()
        .expect("running the clients");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.trim(),
        format!("ok={N} fail=0"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    settle();
    let s = status(&ifname);
    let queues = s["pollers"].as_array().expect("pollers");
    assert_eq!(queues.len(), 2, "{s}");
    let established: Vec<u64> = queues.iter().map(|q| num(q, "established")).collect();
    let requests: Vec<u64> = queues.iter().map(|q| num(q, "requests")).collect();
    eprintln!("per queue: established {established:?}, requests {requests:?}");
    for (q, p) in queues.iter().enumerate() {
        assert!(
            num(p, "established") > 0 && num(p, "requests") > 0,
            "queue {q} served nothing: {p}"
        );
        assert_eq!(p["core"], choice.cores[q], "{p}");
    }
    let sum = |v: &[u64]| v.iter().sum::<u64>();
    assert_eq!(sum(&established), N, "every connection established once");
    assert_eq!(sum(&requests), N);
    assert_eq!(num(&s["bypass_tcp"], "connections_established"), N, "{s}");
    assert_eq!(num(&s["bypass"], "requests"), N, "{s}");
    let p = port(&s, BYPASS);
    assert_eq!(num(&p["bypass"], "connections_total"), N, "{p}");
    assert_eq!(num(p, "kernel_connections_total"), 0, "{p}");
    // The status table has a line per queue.
    let o = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args(["status", "--iface", &ifname])
        .output()
        .expect("xgate status");
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("QUEUE"), "{table}");
    eprintln!("{table}");
}
