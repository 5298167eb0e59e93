//! `xgate status`: per port, the listener tag, the steering state and the BPF counters (read
//! live from the pinned maps, per-CPU values summed), the bypass connections that are live now
//! (`user_flows` entries of the port); per port and per path, connections and requests
//! answered (from the gateway's state file, which the engines and the kernel path feed).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bpf::SteeringMaps;
use crate::report::{RuntimeState, Status};
use crate::tcp::DropReason;

use super::{locate, CtlError};

/// Collects the status of the gateway on `ifname` (or the only one).
pub fn collect(ifname: Option<&str>) -> Result<Status, CtlError> {
    let gw = locate(ifname)?;
    let maps = SteeringMaps::open_pinned(&gw.pin_dir)?;
    let runtime = RuntimeState::read(&gw.ifname)?.unwrap_or_default();
    let mut status = Status::from_parts(gw.ifname, gw.pid, &maps, &runtime)?;
    // The live `user_flows` entries by port: a walk of the whole map, fine for a command an
    // operator runs, too costly for the gateway's periodic metrics page.
    let mut live: BTreeMap<u16, u64> = BTreeMap::new();
    for flow in maps.user_flows() {
        *live.entry(flow.local_port()).or_default() += 1;
    }
    for p in &mut status.ports {
        p.bypass_connections = live.get(&p.port).copied().unwrap_or(0);
    }
    Ok(status)
}

impl Status {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "xgate on {} (pid {}, XDP {}, {}; gateway counters {} ms old)",
            self.ifname,
            self.pid,
            if self.xdp_attached.is_empty() {
                "?"
            } else {
                &self.xdp_attached
            },
            if self.phase.is_empty() {
                "?"
            } else {
                &self.phase
            },
            self.counters_age_ms
        );
        let _ = writeln!(
            s,
            "{:>6} {:>7} {:>9} {:>11} {:>11} {:>11} {:>11} | {:>11} {:>11} {:>11} | {:>11} {:>11} {:>11}",
            "PORT",
            "TAGGED",
            "STATE",
            "REDIRECTED",
            "REDIR-IPV6",
            "PASSED",
            "SYNS-STEER",
            "BYPASS-LIVE",
            "BYPASS-CONN",
            "BYPASS-REQ",
            "KERNEL-LIVE",
            "KERNEL-CONN",
            "KERNEL-REQ"
        );
        for p in &self.ports {
            let _ = writeln!(
                s,
                "{:>6} {:>7} {:>9} {:>11} {:>11} {:>11} {:>11} | {:>11} {:>11} {:>11} | {:>11} {:>11} {:>11}",
                p.port,
                if p.listener_tagged { "yes" } else { "NO" },
                p.state,
                p.redirected,
                p.redirected_ipv6,
                p.passed,
                p.syns_steered,
                p.bypass_connections,
                p.bypass.connections_total,
                p.bypass.requests,
                p.kernel.connections,
                p.kernel.connections_total,
                p.kernel.requests
            );
        }
        let _ = writeln!(
            s,
            "{:>6} {:>12} {:>12} {:>12}",
            "PATH", "LIVE-CONNS", "CONNS-TOTAL", "REQUESTS"
        );
        for (name, p) in [("bypass", &self.bypass), ("kernel", &self.kernel)] {
            let _ = writeln!(
                s,
                "{:>6} {:>12} {:>12} {:>12}",
                name, p.connections, p.connections_total, p.requests
            );
        }
        let _ = writeln!(
            s,
            "{:>6} {:>5} {:>12} {:>12} {:>12} {:>12}",
            "QUEUE", "CPU", "LIVE-CONNS", "ESTABLISHED", "REQUESTS", "RX-FRAMES"
        );
        for q in &self.pollers {
            let cpu = q.core.map_or_else(|| "-".to_string(), |c| c.to_string());
            let _ = writeln!(
                s,
                "{:>6} {:>5} {:>12} {:>12} {:>12} {:>12}",
                q.queue, cpu, q.connections, q.established, q.requests, q.rx_frames
            );
        }
        if !self.upstreams.is_empty() {
            let _ = writeln!(
                s,
                "{:>10} {:>21} {:>9} {:>7} {:>8} {:>8} {:>7} {:>5} {:>8}",
                "UPSTREAM",
                "SERVER",
                "REQUESTS",
                "5XX",
                "FAILED",
                "RETRIED",
                "ACTIVE",
                "IDLE",
                "EJECTED"
            );
            for u in &self.upstreams {
                let c = &u.counters;
                let failed: u64 = c.failures.by_name().iter().map(|(_, n)| n).sum();
                let _ = writeln!(
                    s,
                    "{:>10} {:>21} {:>9} {:>7} {:>8} {:>8} {:>7} {:>5} {:>8}",
                    u.upstream,
                    u.server,
                    c.requests,
                    c.responses[4],
                    failed,
                    c.retried,
                    c.in_flight,
                    u.idle_connections,
                    format!("{}/{}", u.ejected_threads, u.threads)
                );
            }
        }
        let r = &self.reload;
        if r.requested > 0 {
            let _ = writeln!(
                s,
                "reloads: {} asked, {} accepted{}",
                r.requested,
                r.accepted,
                if r.last_error.is_empty() {
                    String::new()
                } else {
                    format!("; last refused: {}", r.last_error)
                }
            );
        }
        let t = &self.bypass_tcp;
        let _ = writeln!(
            s,
            "bypass TCP: {} segments in, {} out, {} retransmitted ({} fast, {} timeouts), \
             {} RSTs sent, {} challenge ACKs",
            t.segments_in,
            t.segments_out,
            t.retransmits,
            t.fast_retransmits,
            t.rto_timeouts,
            t.rsts_out,
            t.challenge_acks_sent
        );
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| t.drop_count(**r) > 0)
            .map(|r| format!("{} {}", r.name(), t.drop_count(*r)))
            .collect();
        let _ = writeln!(
            s,
            "bypass TCP drops: {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(", ")
            }
        );
        s
    }
}
