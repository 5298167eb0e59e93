//! Root-only proof of path MTU discovery on the bypass (RFC 1191, RFC 8201; issue 15, item
//! 2): a black hole for large packets between the gateway and a real Linux client, and the
//! router's "fragmentation needed" / "packet too big" that makes the gateway's connections
//! send smaller segments.
//!
//! `xgate run` serves a bypass port on tests/common's two-queue veth pair (IPv6 addresses
//! added). In the client's namespace an nftables rule on the veth's ingress drops every
//! packet larger than the path's MTU (1200 bytes over IPv4, 1280 over IPv6), as a router with
//! a smaller next hop would; an AF_PACKET socket (`ETH_P_ALL`) on the same veth sees each
//! frame before the rule drops it and answers it as that router does, with the ICMP error quoting it
//! (`testkit::icmp_too_big`). Four downloads run at once per family (flows spread over both
//! queues; the errors, hashed by their addresses alone, land on one of them, so the pollers
//! pass them to the connection's queue). Without the errors (or with the MSS not lowered)
//! the downloads stall; with them they finish byte-exact. A forged error first (its quoted
//! sequence number not in flight) changes nothing and is counted as stale.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::status::{num, pollers_sum, settle, status};
use common::{bytes_body, is_root, run, spawn_xgate, Topology, GW_IP};
use dataplane::testkit::icmp_too_big;
use dataplane::wire::{parse_tcp_frame, IpPair};
use xgate_testnet::packet::PacketSocket;
use xgate_testnet::SERVER_IP6;

const BYPASS: u16 = 18580;
const BODY: usize = 3_000_000;
const DOWNLOADS: usize = 4;

/// The nftables table in the client namespace that drops what exceeds the path's MTU.
fn black_hole(topo: &Topology) {
    let rules = format!(
        "table netdev xgtpmtu {{\n\
           chain in {{\n\
             type filter hook ingress device \"{}\" priority 0;\n\
             ip length > 1200 drop\n\
             ip6 length > 1240 drop\n\
           }}\n\
         }}\n",
        topo.client_if
    );
    let path = std::env::temp_dir().join(format!("{}-pmtu.nft", topo.name));
    std::fs::write(&path, rules).expect("writing the rules");
    run(&[
        "ip",
        "netns",
        "exec",
        &topo.client_ns,
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&path);
}

/// The TCP sequence number's offset in a frame (Ethernet without a tag, IPv4 without
/// options or IPv6 without extension headers, as the engine sends them).
fn seq_offset(v6: bool) -> usize {
    14 + if v6 { 40 } else { 20 } + 4
}

#[test]
fn path_mtu_errors_lower_the_mss_of_bypass_connections_in_both_families() {
    if !is_root() {
        eprintln!("skipping path_mtu_errors_lower_the_mss...: needs root");
        return;
    }
    let mut topo = Topology::create();
    topo.add_ipv6().expect("IPv6 addresses on the veth pair");
    let ifname = topo.server_if.clone();
    let bypass = BYPASS.to_string();
    let ns = topo.server_ns.clone();
    let args = [
        "--iface", &ifname, "--netns", &ns, "--port", &bypass, "--bypass", &bypass,
    ];
    spawn_xgate(&mut topo, &args);
    black_hole(&topo);
    // Every protocol: IPv6 too, and each frame before the black hole drops it.
    let wire = PacketSocket::open_all(&topo.client_ns, &topo.client_if).expect("AF_PACKET socket");
    let expected = bytes_body(BODY);
    let dir = common::TempDir::new(&format!("{}-pmtu", topo.name));

    for (v6, host, mtu) in [
        (false, GW_IP.to_string(), 1200u32),
        (true, format!("[{SERVER_IP6}]"), 1280u32),
    ] {
        let before = status(&ifname)["bypass_tcp"].clone();
        let url = format!("http://{host}:{BYPASS}/bytes/{BODY}");
        // Into files: a pipe nobody reads while they run would close the client's window.
        let files: Vec<_> = (0..DOWNLOADS)
            .map(|i| dir.0.join(format!("v6-{v6}-{i}")))
            .collect();
        let downloads: Vec<Child> = files
            .iter()
            .map(|file| {
                Command::new("ip")
                    .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--fail"])
                    .args(["--max-time", "30", &url, "-o"])
                    .arg(file)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("curl")
            })
            .collect();

        // The router: an error for each frame over the MTU (the first one forged), until the
        // downloads end.
        let mut buf = vec![0u8; 65536];
        let mut icmp = Vec::new();
        let mut errors = 0u32;
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut running = downloads;
        let mut outputs = Vec::new();
        while !running.is_empty() {
            assert!(
                Instant::now() < deadline,
                "IPv6 {v6}: the downloads did not finish; {errors} errors sent; {}",
                status(&ifname)["bypass_tcp"]
            );
            if wire
                .wait_readable(Duration::from_millis(20))
                .unwrap_or(false)
            {
                // A bounded batch, so the downloads are checked between batches.
                for _ in 0..256 {
                    let Ok(Some(n)) = wire.try_recv(&mut buf) else {
                        break;
                    };
                    let frame = &mut buf[..n];
                    let Ok(f) = parse_tcp_frame(frame) else {
                        continue;
                    };
                    if f.tcp.src_port != BYPASS || matches!(f.addrs.ip, IpPair::V6 { .. }) != v6 {
                        continue;
                    }
                    if (n - 14) as u32 <= mtu {
                        continue;
                    }
                    if errors == 0 {
                        // Forged: the same quote with a sequence number half the space away.
                        // It must change nothing (the connections stay stuck behind the black
                        // hole meanwhile, retransmitting at the old size).
                        let at = seq_offset(v6);
                        let seq = u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
                        let mut forged = frame.to_vec();
                        forged[at..at + 4].copy_from_slice(&(seq ^ 0x8000_0000).to_be_bytes());
                        let len = icmp_too_big(&forged, mtu, &mut icmp).expect("an IP frame");
                        wire.send(&icmp[..len]).expect("sending the forged error");
                        errors += 1;
                        settle();
                        let now = status(&ifname)["bypass_tcp"].clone();
                        let delta = |key: &str| num(&now, key) - num(&before, key);
                        assert_eq!(
                            (delta("pmtu_stale"), delta("pmtu_lowered")),
                            (1, 0),
                            "IPv6 {v6}: the forged error is stale and lowers nothing: {now}"
                        );
                    }
                    let len = icmp_too_big(frame, mtu, &mut icmp).expect("an IP frame");
                    wire.send(&icmp[..len]).expect("sending the error");
                    errors += 1;
                }
            }
            let mut still = Vec::new();
            for mut c in running {
                match c.try_wait().expect("curl") {
                    Some(_) => outputs.push(c.wait_with_output().expect("curl output")),
                    None => still.push(c),
                }
            }
            running = still;
        }
        for o in &outputs {
            assert!(
                o.status.success(),
                "IPv6 {v6}: curl: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        for file in &files {
            let body = std::fs::read(file).expect("a downloaded file");
            assert!(body == expected, "IPv6 {v6}: {} bytes back", body.len());
        }
        settle();
        let after = status(&ifname)["bypass_tcp"].clone();
        let delta = |key: &str| num(&after, key) - num(&before, key);
        eprintln!(
            "IPv6 {v6}: {errors} errors sent; lowered {}, stale {}, unchanged {}, unknown {}, \
             PMTU resends {}",
            delta("pmtu_lowered"),
            delta("pmtu_stale"),
            delta("pmtu_unchanged"),
            delta("pmtu_unknown_flow"),
            delta("pmtu_retransmits"),
        );
        assert!(errors > DOWNLOADS as u32, "the black hole was never hit");
        // Once per connection, on whichever queue it lives (the errors all land on one); a
        // connection established after its queue learned the path starts with the smaller
        // MSS and needs no lowering (the per-destination cache).
        let lowered = delta("pmtu_lowered");
        assert!(
            (1..=DOWNLOADS as u64).contains(&lowered),
            "lowered {lowered}"
        );
        assert!(delta("pmtu_retransmits") > 0);
    }
    let s = status(&ifname);
    let relayed = pollers_sum(&s, "pmtu_relayed");
    // Every error arrived on whichever queue the router's frames were sent to; when both
    // queues' connections lowered their MSS, some errors must have been passed across.
    let lowered_on = |p: &serde_json::Value| num(&p["tcp"], "pmtu_lowered") > 0;
    let both = s["pollers"]
        .as_array()
        .expect("pollers")
        .iter()
        .all(lowered_on);
    eprintln!("errors passed between the pollers: {relayed}; both queues lowered: {both}");
    if both {
        assert!(relayed > 0, "{s}");
    }
}
