//! What `/status` serves and `xgate status` prints: per port, the listener tag, the steering
//! state and the BPF counters (read from the steering maps), and per port and per path the
//! connections and requests the engines and the kernel path counted (from the state file).
//!
//! Built the same way by the running gateway (its admin endpoint) and by the operator's
//! `xgate status` (from the pins and the state file), so both show the same figures.

use serde::{Deserialize, Serialize};

use crate::bpf::{PortState, Stat, SteeringMaps};
use crate::http::HttpStats;
use crate::proxy::forwarder::UpstreamServerState;
use crate::tally::PortCount;
use crate::tcp::TcpStats;
use crate::tls::TlsStats;

use super::state::{unix_ms, AccessLogState, KernelState, PollerState, ReloadState, RuntimeState};
use super::ReportError;

/// One port as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub port: u16,
    /// sock_ops saw the gateway's listener (without it the port is never steered).
    pub listener_tagged: bool,
    /// "on", "draining", "off" or "unset".
    pub state: String,
    /// Segments redirected into AF_XDP sockets.
    pub redirected: u64,
    /// Segments left to the kernel.
    pub passed: u64,
    /// Pure SYNs steered to user space.
    pub syns_steered: u64,
    /// Passed because a kernel socket owns the 4-tuple.
    pub kernel_owned: u64,
    /// Wanted a redirect, no AF_XDP socket on the queue: passed.
    pub no_xsk: u64,
    /// Of `redirected`, the IPv6 packets.
    #[serde(default)]
    pub redirected_ipv6: u64,
    /// Of `redirected`, ICMP "fragmentation needed" and ICMPv6 "packet too big" about the
    /// port's bypass connections.
    #[serde(default)]
    pub icmp_steered: u64,
    /// Bypass connections live now (`user_flows` entries).
    pub bypass_connections: u64,
    /// Kernel-path connections accepted so far (sock_ops).
    pub kernel_connections_total: u64,
    /// Passed because no listener of the gateway serves the destination address (rule 3a).
    #[serde(default)]
    pub no_listener: u64,
    /// Passed because the destination is not an address of this host (rule 3b).
    #[serde(default)]
    pub not_local: u64,
    /// Of `kernel_connections_total`, those of IPv6 clients.
    #[serde(default)]
    pub kernel_connections_ipv6: u64,
    /// This port on the bypass path, from the engines' counters.
    pub bypass: PathStatus,
    /// This port on the kernel path, from the kernel path's counters.
    pub kernel: PathStatus,
}

/// One path's totals (or one port's share of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStatus {
    /// Live connections.
    pub connections: u64,
    /// Connections taken so far.
    pub connections_total: u64,
    /// HTTP requests answered so far.
    pub requests: u64,
}

/// Everything `status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub ifname: String,
    pub pid: u32,
    pub xdp_attached: String,
    pub phase: String,
    /// Age of the gateway's own counters (bypass, kernel, pollers, kernel_path), in ms.
    pub counters_age_ms: u64,
    pub ports: Vec<PortStatus>,
    pub bypass: PathStatus,
    pub kernel: PathStatus,
    pub pollers: Vec<PollerState>,
    /// The bypass engines' TCP counters summed over the pollers (drops by reason and all).
    pub bypass_tcp: TcpStats,
    /// The bypass engines' HTTP counters summed over the pollers (status classes, latency).
    pub bypass_http: HttpStats,
    /// The bypass engines' TLS counters summed over the pollers.
    #[serde(default)]
    pub bypass_tls: TlsStats,
    pub kernel_path: KernelState,
    /// Reloads asked for (`xgate reload`, SIGHUP) and how they went.
    pub reload: ReloadState,
    /// The access log's counters, when there is one.
    pub access_log: Option<AccessLogState>,
    /// Each upstream server of the proxy (both paths, every serving thread).
    #[serde(default)]
    pub upstreams: Vec<UpstreamServerState>,
}

fn state_name(s: Option<PortState>) -> &'static str {
    match s {
        Some(PortState::On) => "on",
        Some(PortState::Draining) => "draining",
        Some(PortState::Off) => "off",
        None => "unset",
    }
}

impl Status {
    /// The status from the steering maps and the gateway's own counters: what `collect`
    /// reads from the pins and the state file, and what the running gateway has in hand for
    /// its metrics endpoint. `bypass_connections` stays 0 (see `collect`).
    pub fn from_parts(
        ifname: String,
        pid: u32,
        maps: &SteeringMaps,
        runtime: &RuntimeState,
    ) -> Result<Status, ReportError> {
        // Ports: those the gateway says it serves, plus any tagged listener it does not name.
        let mut ports: Vec<u16> = runtime.ports.iter().map(|p| p.port).collect();
        for l in maps.listeners()? {
            if !ports.contains(&l.port) {
                ports.push(l.port);
            }
        }
        ports.sort_unstable();
        let on_path = |counts: &[PortCount], port: u16| {
            counts
                .iter()
                .find(|c| c.port == port)
                .map_or(PathStatus::default(), |c| PathStatus {
                    connections: c.live,
                    connections_total: c.total,
                    requests: c.requests,
                })
        };
        let mut out = Vec::with_capacity(ports.len());
        for port in ports {
            let stats = maps.port_stats(port)?.unwrap_or_default();
            out.push(PortStatus {
                port,
                listener_tagged: maps.listener(port)?.is_some(),
                state: state_name(maps.port_state(port)?).to_string(),
                redirected: stats.get(Stat::Redirected),
                passed: stats.get(Stat::Passed),
                syns_steered: stats.get(Stat::SynSteered),
                kernel_owned: stats.get(Stat::KernelOwned),
                no_xsk: stats.get(Stat::NoXsk),
                redirected_ipv6: stats.get(Stat::RedirectedV6),
                icmp_steered: stats.get(Stat::IcmpSteered),
                bypass_connections: 0,
                kernel_connections_total: stats.get(Stat::KernelConns),
                kernel_connections_ipv6: stats.get(Stat::KernelConnsV6),
                no_listener: stats.get(Stat::NoListener),
                not_local: stats.get(Stat::NotLocal),
                bypass: on_path(&runtime.bypass_ports, port),
                kernel: on_path(&runtime.kernel.ports, port),
            });
        }
        let sum = |f: fn(&PollerState) -> u64| runtime.pollers.iter().map(f).sum::<u64>();
        Ok(Status {
            ifname,
            pid,
            xdp_attached: runtime.xdp_attached.clone(),
            phase: runtime.phase.clone(),
            counters_age_ms: unix_ms().saturating_sub(runtime.updated_unix_ms),
            ports: out,
            bypass: PathStatus {
                connections: sum(|p| p.connections),
                connections_total: sum(|p| p.established),
                requests: sum(|p| p.requests),
            },
            kernel: PathStatus {
                connections: runtime.kernel.connections,
                connections_total: runtime.kernel.accepted,
                requests: runtime.kernel.requests,
            },
            bypass_tcp: runtime
                .pollers
                .iter()
                .fold(TcpStats::default(), |mut t, p| {
                    t.add(&p.tcp);
                    t
                }),
            bypass_http: runtime
                .pollers
                .iter()
                .fold(HttpStats::default(), |mut h, p| {
                    h.add(&p.http);
                    h
                }),
            bypass_tls: runtime
                .pollers
                .iter()
                .fold(TlsStats::default(), |mut t, p| {
                    t.add(&p.tls);
                    t
                }),
            pollers: runtime.pollers.clone(),
            kernel_path: runtime.kernel.clone(),
            reload: runtime.reload.clone(),
            access_log: runtime.access_log.clone(),
            upstreams: runtime.upstreams.clone(),
        })
    }
}
