//! The running gateway's own counters, for `xgate status`: `/run/xgate/<iface>.json`. The
//! schema and the reading are here; the writing is the running process's
//! (`gateway::publish`).
//!
//! Why a file rewritten every [`REFRESH`] rather than a unix socket the gateway answers on:
//! the gateway's main thread already wakes up periodically (it waits for signals with a
//! timeout), so writing a snapshot costs nothing new — no listener, no protocol, no thread to
//! answer clients, nothing a slow or hostile reader can block; `status` works the same whether
//! or not the gateway is responsive, and can say how old the figures are (`updated_unix_ms`).
//! The cost is figures up to [`REFRESH`] old, which is fine for an operator's view; the
//! steering counters (`stats` map) are read live from the pins anyway. The file is written to
//! a temporary name and renamed, so a reader never sees half of it, with mode 0600 in the
//! root-only `/run/xgate`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::bpf::LOCK_DIR;
use crate::http::HttpStats;
use crate::proxy::forwarder::UpstreamServerState;
use crate::tally::PortCount;
use crate::tcp::TcpStats;
use crate::tls::TlsStats;

use super::ReportError;

/// How often the gateway rewrites its state file.
pub const REFRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// The state file of an interface's gateway.
pub fn state_path(ifname: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{ifname}.json"))
}

/// What a running gateway publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub pid: u32,
    pub ifname: String,
    /// Served ports, with the path each started on.
    pub ports: Vec<ServedPort>,
    /// "native" or "generic".
    pub xdp_attached: String,
    pub cgroup: String,
    pub started_unix_ms: u64,
    pub updated_unix_ms: u64,
    /// "running" or "draining" (after SIGINT/SIGTERM).
    pub phase: String,
    /// The bypass path, one entry per RX queue.
    pub pollers: Vec<PollerState>,
    /// The bypass path's connections and requests by port (summed over the queues).
    #[serde(default)]
    pub bypass_ports: Vec<PortCount>,
    pub kernel: KernelState,
    /// Reloads asked for (SIGHUP) and how they went.
    #[serde(default)]
    pub reload: ReloadState,
    /// The access log's counters; `None` when there is no access log.
    #[serde(default)]
    pub access_log: Option<AccessLogState>,
    /// Each upstream server of the proxy, summed over the serving threads (both paths).
    #[serde(default)]
    pub upstreams: Vec<UpstreamServerState>,
}

/// What the access log wrote and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogState {
    pub path: String,
    /// Lines written to the file.
    pub written: u64,
    /// Records lost: a serving thread's buffer full (the writer or the disk did not keep
    /// up) or a failed write.
    pub dropped: u64,
    /// Failed writes and reopens.
    pub errors: u64,
    /// Reopens (SIGUSR1).
    pub reopens: u64,
}

/// What became of the reloads a gateway was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadState {
    /// SIGHUPs handled.
    pub requested: u64,
    /// Reloads accepted and handed to the pollers and the kernel path.
    pub accepted: u64,
    /// Why the last refused reload was refused (the running configuration stayed); empty
    /// once a later one is accepted.
    pub last_error: String,
    pub last_unix_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedPort {
    pub port: u16,
    pub bypass_at_start: bool,
}

/// One poller's counters (a subset of `afxdp::PollerCounters`, the ones an operator reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollerState {
    pub queue: u32,
    /// The CPU the poller is pinned to (`None`: not pinned).
    #[serde(default)]
    pub core: Option<usize>,
    /// Live TCP connections in the engine.
    pub connections: u64,
    /// Connections established (valid cookie ACKs).
    pub established: u64,
    /// HTTP requests answered.
    pub requests: u64,
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub retransmits: u64,
    pub rsts_out: u64,
    pub flows_added: u64,
    pub flows_removed: u64,
    pub flow_map_errors: u64,
    pub sleeps: u64,
    pub wakeups: u64,
    /// Reloads the engine has applied.
    #[serde(default)]
    pub reloads: u64,
    /// Path MTU errors about another queue's connections passed to that queue's poller, and
    /// those dropped for a full inbox.
    #[serde(default)]
    pub pmtu_relayed: u64,
    #[serde(default)]
    pub pmtu_relay_dropped: u64,
    /// Loop rounds that did work, and rounds that found none (busy ratio).
    #[serde(default)]
    pub busy_loops: u64,
    #[serde(default)]
    pub idle_loops: u64,
    /// Received frames the engine refused (reasons in `tcp.drops`).
    #[serde(default)]
    pub rx_refused: u64,
    /// Rounds whose sending stopped on a full TX ring, or for want of a free UMEM frame.
    #[serde(default)]
    pub tx_ring_full: u64,
    #[serde(default)]
    pub tx_no_frame: u64,
    /// Rounds that ended with an empty fill ring (the kernel drops what arrives then).
    #[serde(default)]
    pub fill_ring_empty: u64,
    /// The kernel's drops at the AF_XDP socket (`XDP_STATISTICS`): RX ring full, no
    /// fill-ring frame, other reasons; and descriptors it found invalid.
    #[serde(default)]
    pub socket_rx_ring_full: u64,
    #[serde(default)]
    pub socket_rx_fill_ring_empty: u64,
    #[serde(default)]
    pub socket_rx_dropped: u64,
    #[serde(default)]
    pub socket_rx_invalid_descs: u64,
    #[serde(default)]
    pub socket_tx_invalid_descs: u64,
    /// The engine's TCP counters.
    #[serde(default)]
    pub tcp: TcpStats,
    /// The engine's HTTP counters.
    #[serde(default)]
    pub http: HttpStats,
    /// Requests routed upstream answered 503 (no eligible server) and 502 (no connection).
    #[serde(default)]
    pub upstream_no_server: u64,
    #[serde(default)]
    pub upstream_no_connection: u64,
    /// The TLS ports' handshakes and failures on this engine.
    #[serde(default)]
    pub tls: TlsStats,
}

/// The kernel path's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelState {
    /// Live connections.
    pub connections: u64,
    pub accepted: u64,
    pub refused: u64,
    pub closed: u64,
    /// HTTP requests answered (closed and live connections).
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub resets: u64,
    pub errors: u64,
    /// Connections and requests by port.
    #[serde(default)]
    pub ports: Vec<PortCount>,
    /// Reloads applied (one waits while older responses finish).
    #[serde(default)]
    pub reloads: u64,
    /// HTTP counters (status classes, latency...).
    #[serde(default)]
    pub http: HttpStats,
    /// Requests routed upstream answered 503 (no eligible server) and 502 (no connection).
    #[serde(default)]
    pub upstream_no_server: u64,
    #[serde(default)]
    pub upstream_no_connection: u64,
    /// The upstream servers as the kernel path sees them.
    #[serde(default)]
    pub upstreams: Vec<UpstreamServerState>,
    /// The TLS ports' handshakes and failures on the kernel path.
    #[serde(default)]
    pub tls: TlsStats,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RuntimeState {
    /// Reads an interface's state file; `None` when there is none.
    pub fn read(ifname: &str) -> Result<Option<Self>, ReportError> {
        let path = state_path(ifname);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReportError::io("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ReportError::io("parsing", &path)(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e,
            ))
        })
    }
}
