//! The comparison's test network: an [`xgate_testnet::Topology`] (two network namespaces
//! joined by a veth pair, named after this process so that two runs, or a test beside a run,
//! never collide, and removed on drop, on success, error or panic), plus the removal of what
//! an xgate killed on it leaves behind.
//!
//! ```text
//!  netns <p>c (client: loadgen, wrk)        netns <p>s (server: xgate or nginx)
//!  veth <p>c 10.231.0.2/30  <────────────>  veth <p>s 10.231.0.1/30, one RX queue
//! ```
//!
//! One RX/TX queue on each end unless asked for more ([`Topology::with_queues`]: the scaling
//! figure's second poller): the client's flows then spread over its end's TX queues by their
//! hash, and each TX queue feeds the server end's RX queue of the same index.
//!
//! IPv6 when asked for (`add_ipv6`, through `Deref`; the veth network only): [`SERVER_IP6`]
//! and [`CLIENT_IP6`] on one /64 as well.
//!
//! Two kinds ([`Network`]):
//! - `veth`: the pair as veth makes it, where each end's receive runs inside the other end's
//!   transmit, so the server's core pays for the client's TCP receive and the client's core
//!   for the server's: the realistic end-to-end with kernel clients, but not a measure of the
//!   server's cost.
//! - `lab`: each end receives in threaded NAPI, its NAPI thread bound to its own side's core,
//!   as a NIC's receive runs on the core its queue's interrupt is on; the server's core then
//!   pays for the server's receive and transmit and nothing of the client's (measured per
//!   run: [`super::attribution`]).
//!
//! In both, the client is what a real client is on the wire: its transmit checksum and
//! segmentation offloads are off (a real NIC would segment and checksum before the wire; on
//! veth, AF_XDP would otherwise see partial checksums and super-segments), its GRO is on (as
//! a real client's). The server's offloads stay at veth's defaults. The same network serves
//! every target, so they all meet the same client.

use std::net::Ipv4Addr;
use std::ops::Deref;

use super::report::TopologyRecord;
use super::CompareError;

pub use xgate_testnet::{CLIENT_IP6, SERVER_IP6};

pub const SERVER_IP: &str = "10.231.0.1";
pub const CLIENT_IP: &str = "10.231.0.2";
const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);
/// The client's address in the path comparison's routed topology: another /30.
const PATHS_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 6);

impl From<xgate_testnet::CommandError> for CompareError {
    fn from(e: xgate_testnet::CommandError) -> Self {
        CompareError::Command {
            command: e.command,
            message: e.message,
        }
    }
}

/// Which test network (module doc).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    #[default]
    Veth,
    Lab,
}

impl Network {
    pub const ALL: [Network; 2] = [Network::Veth, Network::Lab];

    pub fn name(self) -> &'static str {
        match self {
            Network::Veth => "veth",
            Network::Lab => "lab",
        }
    }

    pub fn parse(name: &str) -> Option<Network> {
        Self::ALL.into_iter().find(|n| n.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            Network::Veth => {
                "veth pair between two network namespaces (AF_XDP in copy mode); each end's \
                 receive runs in the other end's transmit"
            }
            Network::Lab => {
                "lab: veth pair between two network namespaces (AF_XDP in copy mode), each end \
                 receiving in threaded NAPI bound to its own side's core"
            }
        }
    }
}

/// The namespaces and the veth pair (through `Deref`: `server_ns`, `in_client`, ...).
#[derive(Debug)]
pub struct Topology {
    net: xgate_testnet::Topology,
    kind: Network,
    /// RX/TX queues of each veth end.
    queues: u32,
}

/// RX/TX queues of each veth end unless asked for more: one poller, pinned to the server's
/// core (`loadgen compare`, `loadgen paths`).
pub const DEFAULT_QUEUES: u32 = 1;

impl Topology {
    /// `cores`: (server, client), the CPUs the lab binds each side's NAPI threads to.
    pub fn create(kind: Network, cores: (usize, usize)) -> Result<Self, CompareError> {
        Self::with_client_gro(kind, cores, true)
    }

    /// [`Topology::create`], with the client's GRO as given (`--client-gro off` shows what a
    /// client without it does to each path on the veth network; the lab needs it on).
    pub fn with_client_gro(
        kind: Network,
        cores: (usize, usize),
        client_gro: bool,
    ) -> Result<Self, CompareError> {
        Self::build(kind, cores, client_gro, DEFAULT_QUEUES)
    }

    /// [`Topology::create`] with `queues` RX/TX queues on each veth end (one poller each).
    pub fn with_queues(
        kind: Network,
        cores: (usize, usize),
        queues: u32,
    ) -> Result<Self, CompareError> {
        Self::build(kind, cores, true, queues)
    }

    fn build(
        kind: Network,
        cores: (usize, usize),
        client_gro: bool,
        queues: u32,
    ) -> Result<Self, CompareError> {
        let net = xgate_testnet::Topology::create(&xgate_testnet::TopologyConfig {
            tag: "lgc",
            server_ip: SERVER_ADDR,
            client_ip: CLIENT_ADDR,
            queues,
            server_offloads_off: false,
            client_gro,
            threaded_napi: (kind == Network::Lab).then_some(xgate_testnet::NapiCpus {
                server: cores.0,
                client: cores.1,
            }),
        })?;
        Ok(Topology { net, kind, queues })
    }

    /// The path comparison's topology (`super::paths`): a router between server and client
    /// (where the path emulator holds packets, off both hosts), the client on a /30 of its
    /// own ([`PATHS_CLIENT_ADDR`]), no NAPI threads, and segmentation and receive offloads
    /// off on every end, so every packet the emulator sees is one on the wire.
    pub fn for_paths() -> Result<Self, CompareError> {
        let net = xgate_testnet::Topology::create_routed(&xgate_testnet::TopologyConfig {
            tag: "lgp",
            server_ip: SERVER_ADDR,
            client_ip: PATHS_CLIENT_ADDR,
            queues: DEFAULT_QUEUES,
            server_offloads_off: true,
            client_gro: false,
            threaded_napi: None,
        })?;
        Ok(Topology {
            net,
            kind: Network::Veth,
            queues: DEFAULT_QUEUES,
        })
    }

    pub fn kind(&self) -> Network {
        self.kind
    }

    /// RX/TX queues of each veth end.
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// What the run's record says of this network: the offloads as `ethtool -k` reports them
    /// now, so the figures say who paid for segmentation and checksums.
    pub fn record(&self) -> Result<TopologyRecord, CompareError> {
        let o = self.net.offload_settings()?;
        Ok(TopologyRecord {
            kind: self.kind.description().into(),
            queues: self.queues,
            server_offloads: o.server.into_iter().collect(),
            client_offloads: o.client.into_iter().collect(),
        })
    }
}

impl Deref for Topology {
    type Target = xgate_testnet::Topology;
    fn deref(&self) -> &Self::Target {
        &self.net
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // xgate keeps its (empty) per-interface lock file after it exits, which suits an
        // interface that lives on; this one's name was made for this run and goes with the
        // namespaces (when the inner topology drops, right after this).
        let _ = std::fs::remove_file(format!("/run/xgate/{}.lock", self.server_if));
        // A gateway killed with SIGKILL (a test that failed midway) also leaves its state file
        // and its pinned maps; both are named after this run's interface.
        let _ = std::fs::remove_file(format!("/run/xgate/{}.json", self.server_if));
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/xgate/{}", self.server_if));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_strings_are_the_configured_addresses() {
        assert_eq!(SERVER_IP, SERVER_ADDR.to_string());
        assert_eq!(CLIENT_IP, CLIENT_ADDR.to_string());
    }
}
