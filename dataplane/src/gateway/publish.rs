//! The state file's writer: every [`REFRESH`](crate::report::REFRESH) the main thread gathers
//! the pollers' and the kernel path's counters into a [`RuntimeState`] and rewrites
//! `/run/xgate/<iface>.json` (the schema and why a file: [`crate::report`]); the same
//! snapshot feeds the admin endpoint's pages through [`Status`].

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};

use crate::afxdp::PollerCounters;
use crate::http::HttpStats;
use crate::kernel::KernelPath;
use crate::proxy::forwarder::UpstreamServerState;
use crate::report::{
    state_path, unix_ms, KernelState, PollerState, ReportError, RuntimeState, Status,
};
use crate::tcp::TcpStats;

use super::Bypass;
use crate::tls::TlsStats;

/// The gateway's published state and where the kernel path's thread leaves its counters.
pub(super) struct Publisher {
    /// What the next write says (the main loop sets `phase` and `reload` in it).
    pub(super) state: RuntimeState,
    /// Written by the kernel path's thread, read here.
    kernel: Arc<Mutex<KernelState>>,
}

impl Publisher {
    pub(super) fn new(state: RuntimeState, kernel: Arc<Mutex<KernelState>>) -> Self {
        Publisher { state, kernel }
    }

    /// Takes the counters of both paths into the state and rewrites the state file.
    pub(super) fn write(&mut self, bypass: &Bypass) -> Result<(), ReportError> {
        let state = &mut self.state;
        state.updated_unix_ms = unix_ms();
        let cores = bypass.poller_cores();
        state.pollers = bypass
            .counters()
            .iter()
            .zip(bypass.tcp_stats_by_queue())
            .zip(bypass.http_stats_by_queue())
            .zip(bypass.tls_stats_by_queue())
            .enumerate()
            .map(|(q, (((c, tcp), http), tls))| {
                let mut p = poller_state(q as u32, c, &tcp, &http);
                p.core = cores.get(q).copied().flatten();
                p.tls = tls;
                p
            })
            .collect();
        state.bypass_ports = bypass.port_counts();
        state.kernel = self
            .kernel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let bypass_upstreams = bypass.upstream_states();
        state.upstreams =
            UpstreamServerState::merge(bypass_upstreams.iter().chain(&state.kernel.upstreams));
        write(state)
    }

    /// The status page of the last write, as `xgate status` would build it.
    pub(super) fn status(&self, bypass: &Bypass) -> Status {
        Status::from_parts(
            self.state.ifname.clone(),
            self.state.pid,
            bypass.maps(),
            &self.state,
        )
        .unwrap_or_default()
    }
}

/// One poller's counters as the state file carries them.
pub(super) fn poller_state(
    queue: u32,
    c: &PollerCounters,
    tcp: &TcpStats,
    http: &HttpStats,
) -> PollerState {
    PollerState {
        tcp: tcp.clone(),
        http: *http,
        busy_loops: c.busy_loops,
        idle_loops: c.idle_loops,
        rx_refused: c.rx_refused,
        tx_ring_full: c.tx_ring_full,
        tx_no_frame: c.tx_no_frame,
        fill_ring_empty: c.fill_ring_empty,
        socket_rx_ring_full: c.socket_rx_ring_full,
        socket_rx_fill_ring_empty: c.socket_rx_fill_ring_empty,
        socket_rx_dropped: c.socket_rx_dropped,
        socket_rx_invalid_descs: c.socket_rx_invalid_descs,
        socket_tx_invalid_descs: c.socket_tx_invalid_descs,
        queue,
        core: None,
        connections: c.connections,
        established: c.tcp_established,
        requests: c.http_requests,
        rx_frames: c.rx_frames,
        tx_frames: c.tx_frames,
        retransmits: c.tcp_retransmits,
        rsts_out: c.tcp_rsts_out,
        flows_added: c.flows_added,
        flows_removed: c.flows_removed,
        flow_map_errors: c.flow_map_errors,
        sleeps: c.sleeps,
        wakeups: c.wakeups,
        reloads: c.reloads,
        pmtu_relayed: c.pmtu_relayed,
        pmtu_relay_dropped: c.pmtu_relay_dropped,
        upstream_no_server: c.upstream_no_server,
        upstream_no_connection: c.upstream_no_connection,
        tls: TlsStats::default(),
    }
}

/// The kernel path's counters as the state file carries them.
pub(super) fn kernel_state(kernel: &KernelPath) -> KernelState {
    let stats = kernel.stats();
    let e = &stats.errors;
    KernelState {
        connections: kernel.connection_count() as u64,
        accepted: stats.accepted,
        refused: stats.refused,
        closed: stats.closed,
        requests: kernel.requests(),
        bytes_in: stats.bytes_in,
        bytes_out: stats.bytes_out,
        resets: e.reset,
        errors: e.accept + e.recv + e.send + e.input_overflow + e.submit + e.close,
        ports: kernel.port_counts().to_vec(),
        reloads: kernel.reloads_applied(),
        http: kernel.http_stats(),
        upstream_no_server: kernel.forwarder_stats().no_server,
        upstream_no_connection: kernel.forwarder_stats().no_connection,
        upstreams: kernel.upstream_states(),
        tls: kernel.tls_stats(),
    }
}

/// Writes the state file atomically (temporary file, then rename), mode 0600.
fn write(state: &RuntimeState) -> Result<(), ReportError> {
    let path = state_path(&state.ifname);
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(state).expect("plain data serialises");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(ReportError::io("writing", &tmp))?;
    f.write_all(&json)
        .map_err(ReportError::io("writing", &tmp))?;
    fs::rename(&tmp, &path).map_err(ReportError::io("renaming to", &path))
}

/// Removes an interface's state file (at the gateway's exit).
pub(super) fn remove(ifname: &str) {
    let _ = fs::remove_file(state_path(ifname));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::DropReason;

    #[test]
    fn tcp_counters_travel_with_drops_by_name() {
        let mut tcp = TcpStats {
            retransmits: 7,
            ..TcpStats::default()
        };
        tcp.drops[DropReason::Malformed.index()] = 3;
        let poller = poller_state(0, &PollerCounters::default(), &tcp, &HttpStats::default());
        let json = serde_json::to_value(&poller).unwrap();
        assert_eq!(json["tcp"]["retransmits"], 7);
        assert_eq!(json["tcp"]["drops"]["malformed"], 3);
        assert_eq!(
            json["tcp"]["drops"].as_object().unwrap().len(),
            DropReason::COUNT,
            "every reason is shown, zero or not"
        );
        let back: PollerState = serde_json::from_value(json).unwrap();
        assert_eq!(back, poller);
        // A file from a gateway without TCP counters still reads.
        let old = r#"{"queue":1,"connections":0,"established":0,"requests":0,"rx_frames":0,
            "tx_frames":0,"retransmits":0,"rsts_out":0,"flows_added":0,"flows_removed":0,
            "flow_map_errors":0,"sleeps":0,"wakeups":0}"#;
        let old: PollerState = serde_json::from_str(old).unwrap();
        assert_eq!(old.tcp, TcpStats::default());
    }
}
