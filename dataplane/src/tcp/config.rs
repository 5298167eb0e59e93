//! Bounds, counters and drop reasons of the TCP engine.

use crate::time::Duration;

/// Every bound the engine works within. `Default` is sized for an HTTP gateway on one core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connection slots, allocated up front; a valid cookie ACK beyond this gets a RST.
    pub max_connections: usize,
    /// Receive ring bytes per connection (allocated on a slot's first use, then reused).
    pub rx_buffer: usize,
    /// Transmit ring bytes per connection.
    pub tx_buffer: usize,
    /// Out-of-order bytes held per connection; a segment beyond this is dropped and ACKed.
    pub max_ooo_bytes: usize,
    /// MSS we announce and the largest payload we send.
    pub mss: u16,
    /// Our window scale shift (RFC 7323 §2), clamped to 14.
    pub window_scale: u8,
    /// RFC 6298 §2.1 initial RTO (1 s).
    pub initial_rto: Duration,
    /// Lower bound on the RTO. RFC 6298 §2.4 says 1 s; like Linux we use 200 ms (documented
    /// departure: a gateway on a LAN/datacenter path would otherwise stall for a second on loss).
    pub min_rto: Duration,
    /// Upper bound on the RTO (RFC 6298 §2.5 allows a maximum of at least 60 s).
    pub max_rto: Duration,
    /// Retransmissions of one segment before the connection is aborted with a RST.
    pub max_retransmissions: u32,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3: less than 0.5 s); an ACK is also sent at least
    /// for every second full-sized segment.
    pub delayed_ack: Duration,
    /// How long a TIME_WAIT record lives (2*MSL).
    pub time_wait: Duration,
    /// Bound on TIME_WAIT records; the oldest is dropped (and counted) on overflow.
    pub max_time_wait: usize,
    /// How long FIN_WAIT_2 may last before the connection is dropped.
    pub fin_wait_2_timeout: Duration,
    /// A connection that receives nothing for this long is aborted with a RST.
    pub idle_timeout: Duration,
    /// RFC 5961 §7 challenge-ACK limit, per second, for the whole endpoint.
    pub challenge_ack_limit: u32,
    /// Bound on queued stateless replies (cookie SYN-ACKs, RSTs, TIME_WAIT ACKs).
    pub max_stateless_replies: usize,
    /// TTL of the IPv4 packets we emit.
    pub ttl: u8,
    /// Per second, for the whole endpoint: how many cookie-failing data segments may be checked
    /// as possible first-flight data that overtook the handshake ACK (up to 32 extra hashes
    /// each); beyond this they get the plain RST. Bounds the CPU a flood of such segments costs.
    pub early_data_checks: u32,
    /// Entries of the SYN hint table (client ISNs of recent SYNs, 16 bytes each, allocated
    /// once): lets a client whose handshake ACK was lost or overtaken be recognised from its
    /// next segment instead of being reset. Lossy by design (a SYN flood just overwrites it);
    /// 0 disables it.
    pub syn_hints: usize,
}

impl TcpConfig {
    /// The window of our SYN-ACK (never scaled, RFC 7323 §2.2): at most 16 * MSS, so every
    /// segment of the client's first flight starts at most 16 segments (of at least MSS - 40
    /// bytes, rounded) after its ISN, which the early-data check recognises.
    pub fn syn_window(&self) -> u16 {
        let cap = usize::from(self.mss).saturating_mul(EARLY_DATA_MAX_SEGMENTS as usize);
        self.rx_buffer.min(65535).min(cap) as u16
    }
}

/// Longest first flight (in segments) the early-data check recognises; see `syn_window`.
pub const EARLY_DATA_MAX_SEGMENTS: u32 = 16;

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_connections: 65536,
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            max_ooo_bytes: 128 * 1024,
            mss: 1460,
            window_scale: 7,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_retransmissions: 8,
            delayed_ack: Duration::from_millis(40),
            time_wait: Duration::from_secs(60),
            max_time_wait: 65536,
            fin_wait_2_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            challenge_ack_limit: 1000,
            max_stateless_replies: 4096,
            ttl: 64,
            early_data_checks: 10_000,
            syn_hints: 4096,
        }
    }
}

/// Why a segment was not (fully) accepted. Each reason has its own counter in `TcpStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `wire::parse_tcp_frame` refused the frame (length, checksum, not IPv4/TCP, fragment).
    Malformed,
    /// Illegal flag combination (SYN+FIN, SYN+RST, no flags...).
    BadFlags,
    /// ACK of an unknown flow that failed cookie validation (answered with a RST).
    BadCookie,
    /// Segment of an unknown flow that is neither a SYN nor a cookie ACK (answered with a RST
    /// unless it is a RST).
    NoConnection,
    /// Valid cookie ACK but the connection table is full (answered with a RST).
    TableFull,
    /// Failed the RFC 9293 §3.10.7.4 acceptability test (answered with an ACK).
    OutOfWindow,
    /// RFC 7323 §5 PAWS rejected an old timestamp, or a timestamp was missing.
    Paws,
    /// RST that was not exactly at RCV.NXT (challenge ACK or silently dropped).
    RstNotExact,
    /// SYN on a synchronized connection (challenge ACK).
    SynInSync,
    /// ACK of data we never sent, or older than the window (RFC 5961 §5).
    BadAck,
    /// Segment without ACK on a synchronized connection.
    NoAck,
    /// Out-of-order data beyond the per-connection bound.
    OutOfOrderFull,
    /// A stateless reply could not be queued.
    StatelessQueueFull,
    /// Segment to a TIME_WAIT record that needs no answer.
    TimeWait,
    /// Data of a cookie flow that arrived before its handshake-completing ACK (dropped
    /// silently; the client retransmits it).
    EarlyData,
}

impl DropReason {
    pub const COUNT: usize = 15;

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Counters an operator needs. Monotonic.
#[derive(Debug, Clone, Default)]
pub struct TcpStats {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub rto_timeouts: u64,
    pub rto_aborts: u64,
    pub zero_window_probes: u64,
    pub cookies_sent: u64,
    pub cookies_validated: u64,
    pub cookies_failed: u64,
    pub rsts_in: u64,
    pub rsts_out: u64,
    pub challenge_acks_sent: u64,
    pub challenge_acks_suppressed: u64,
    pub out_of_order_segments: u64,
    pub time_wait_overflows: u64,
    pub table_full: u64,
    pub stateless_queue_overflows: u64,
    pub connections_established: u64,
    pub connections_closed: u64,
    pub idle_timeouts: u64,
    /// Indexed by `DropReason::index()`.
    pub drops: [u64; DropReason::COUNT],
}

impl TcpStats {
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }
}
