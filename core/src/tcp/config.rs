//! Bounds, counters and drop reasons of the TCP engine.

use serde::{Deserialize, Serialize};

use super::congestion::{CongestionAlgorithm, HyStartEvent};
use crate::time::Duration;

/// Every bound the engine works within. `Default` is sized for an HTTP gateway on one core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connection slots, allocated up front; a valid cookie ACK beyond this gets a RST.
    pub max_connections: usize,
    /// Receive ring bytes per connection (allocated on a slot's first use, then reused).
    pub rx_buffer: usize,
    /// Transmit ring bytes per connection, at the start.
    pub tx_buffer: usize,
    /// The most a connection's transmit ring grows to while its congestion window needs
    /// more than half of it and the application keeps it full (`tx_buffer`: no growth).
    pub tx_buffer_max: usize,
    /// The most a connection's receive ring grows to while the application reads more than
    /// half of it per round trip (`rx_buffer`: no growth; the window scale bounds it too).
    pub rx_buffer_max: usize,
    /// Bytes of ring growth (both ways) the endpoint's connections may hold together (see
    /// `BufferBudget`).
    pub buffer_budget: usize,
    /// Out-of-order bytes held per connection; a segment beyond this is dropped and ACKed.
    pub max_ooo_bytes: usize,
    /// MSS we announce and the largest payload we send, over IPv4; over IPv6, whose header is
    /// 20 bytes longer, 20 less, so a full segment fills the same frame (`FlowKey::local_mss`).
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
    /// TTL of the IPv4 packets we emit, and hop limit of the IPv6 ones.
    pub ttl: u8,
    /// Per second, for the whole endpoint: how many cookie-failing data segments may be checked
    /// as possible first-flight data that overtook the handshake ACK (up to 32 extra hashes
    /// each); beyond this they get the plain RST. Bounds the CPU a flood of such segments costs.
    pub early_data_checks: u32,
    /// Entries of the SYN hint table (client ISNs of recent SYNs, 44 bytes each since a flow
    /// can be IPv6, allocated once): lets a client whose handshake ACK was lost or overtaken be
    /// recognised from its next segment instead of being reset. Lossy by design (a SYN flood
    /// just overwrites it); 0 disables it.
    pub syn_hints: usize,
    /// The congestion controller of new connections: CUBIC (RFC 9438) unless the operator
    /// picks NewReno.
    pub congestion: CongestionAlgorithm,
    /// HyStart++ (RFC 9406) in each connection's first slow start: leave slow start when
    /// the RTT rises (a queue building) rather than on the loss of a large part of a window.
    /// On by default, as Linux's HyStart is.
    pub hystart: bool,
    /// Entries of the SYN cache (`endpoint/syn_cache.rs`; about 84 bytes each plus 20 of heap,
    /// allocated once, in buckets of 8): a SYN-RECEIVED flow kept with its exact options and
    /// its SYN-ACK retransmitted. When its bucket is full, a SYN gets a cookie alone. Rounded
    /// down to a multiple of 8; below 8 disables the cache (every SYN gets a cookie).
    pub syn_cache: usize,
    /// SYNs that may enter the SYN cache per second; beyond this (a flood) they get cookies.
    pub syn_cache_rate: u32,
    /// SYN-ACK retransmissions of a cached entry (every RTO from `initial_rto`, doubling)
    /// before it is dropped; its ACK can still complete as a cookie ACK afterwards.
    pub syn_ack_retries: u8,
    /// ECN (RFC 3168, `tcp/ecn.rs`) for a client whose SYN asks for it: accepted when the
    /// SYN cache answers (Linux's default, `tcp_ecn = 2`), declined by a cookie alone.
    pub ecn: bool,
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
            tx_buffer_max: 4 * 1024 * 1024,
            rx_buffer_max: 4 * 1024 * 1024,
            buffer_budget: 256 * 1024 * 1024,
            max_ooo_bytes: 256 * 1024,
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
            congestion: CongestionAlgorithm::Cubic,
            hystart: true,
            syn_cache: 4096,
            syn_cache_rate: 20_000,
            syn_ack_retries: 3,
            ecn: true,
        }
    }
}

/// Why a segment was not (fully) accepted. Each reason has its own counter in `TcpStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `wire::parse_tcp_frame` refused the frame (length, header fields, options, not
    /// IPv4/IPv6 TCP, fragment, an IPv6 extension header it does not walk) and it was not a
    /// well-formed path MTU message either (`wire::parse_icmp_frame`: any other ICMP type,
    /// or a fault in the ICMP message or its quote).
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
    /// ACK of data we never sent, or older than the window (RFC 5961 §5); in SYN-RECEIVED (a
    /// SYN cache entry), an ACK of anything but our SYN (answered with a RST).
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
    /// The TCP, IPv4 or ICMP checksum does not verify (damage on the wire, usually).
    BadChecksum,
}

impl DropReason {
    pub const COUNT: usize = 16;

    /// Every reason, in `index()` order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::BadFlags,
        DropReason::BadCookie,
        DropReason::NoConnection,
        DropReason::TableFull,
        DropReason::OutOfWindow,
        DropReason::Paws,
        DropReason::RstNotExact,
        DropReason::SynInSync,
        DropReason::BadAck,
        DropReason::NoAck,
        DropReason::OutOfOrderFull,
        DropReason::StatelessQueueFull,
        DropReason::TimeWait,
        DropReason::EarlyData,
        DropReason::BadChecksum,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    /// The reason's name in counters and metrics (snake case, stable).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadFlags => "bad_flags",
            DropReason::BadCookie => "bad_cookie",
            DropReason::NoConnection => "no_connection",
            DropReason::TableFull => "table_full",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::Paws => "paws",
            DropReason::RstNotExact => "rst_not_exact",
            DropReason::SynInSync => "syn_in_sync",
            DropReason::BadAck => "bad_ack",
            DropReason::NoAck => "no_ack",
            DropReason::OutOfOrderFull => "out_of_order_full",
            DropReason::StatelessQueueFull => "stateless_queue_full",
            DropReason::TimeWait => "time_wait",
            DropReason::EarlyData => "early_data",
            DropReason::BadChecksum => "bad_checksum",
        }
    }
}

/// Counters an operator needs. Monotonic. Serialised with the drops by reason name
/// (`{"malformed": 0, ...}`) for the state file and `xgate status --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpStats {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Segments sent again, for any reason (the SYN-ACK's apart).
    pub retransmits: u64,
    /// Of `retransmits`: resent by the go-back-N after a retransmission timeout (or a
    /// zero-window probe sent again).
    pub timeout_retransmits: u64,
    /// Of `retransmits`: tail loss probes that resent the last segment.
    pub probe_retransmits: u64,
    /// Loss recovery episodes entered (fast retransmit, or RACK marking a loss).
    pub fast_retransmits: u64,
    pub rto_timeouts: u64,
    pub rto_aborts: u64,
    pub zero_window_probes: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u64,
    /// Segments RACK marked lost (RFC 8985 §6.2).
    pub rack_lost: u64,
    /// ACKs sent whose first SACK block reports a duplicate segment (RFC 2883).
    pub dsacks_sent: u64,
    /// D-SACK blocks received (RFC 2883 §4).
    pub dsacks_received: u64,
    /// Connections that negotiated ECN (RFC 3168).
    pub ecn_negotiated: u64,
    /// Segments that arrived marked Congestion Experienced.
    pub ecn_ce_received: u64,
    /// Window reductions for an ECN-Echo (at most one per window of data).
    pub ecn_reductions: u64,
    /// HyStart++ (RFC 9406) in first slow starts: Conservative Slow Start begun on a rise in
    /// the RTT, and abandoned when the rise proved to be jitter.
    pub hystart_css_entries: u64,
    pub hystart_css_abandoned: u64,
    /// First slow starts ended without a loss by the ACK train, and the sum of their windows
    /// at the exit in segments (Linux's `TCPHystartTrainDetect`, `TCPHystartTrainCwnd`).
    pub hystart_train_exits: u64,
    pub hystart_train_exit_segments: u64,
    /// First slow starts ended without a loss after CSS's rounds, and the sum of their
    /// windows at the exit in segments (Linux's `TCPHystartDelayDetect`, `...DelayCwnd`).
    pub hystart_delay_exits: u64,
    pub hystart_delay_exit_segments: u64,
    pub cookies_sent: u64,
    pub cookies_validated: u64,
    pub cookies_failed: u64,
    /// SYNs kept in the SYN cache.
    pub syn_cache_added: u64,
    /// Connections created from a SYN cache entry.
    pub syn_cache_completed: u64,
    /// Entries dropped after their last SYN-ACK retransmission went unanswered.
    pub syn_cache_expired: u64,
    /// Entries removed by a RST at exactly RCV.NXT.
    pub syn_cache_reset: u64,
    /// SYNs answered with a cookie alone because the cache's bucket was full or this second's
    /// budget spent (`syn_cache_rate`).
    pub syn_cache_overflows: u64,
    /// SYN-ACKs sent again from an entry (timer or retransmitted SYN).
    pub syn_ack_retransmits: u64,
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
    /// Send rings grown (each doubling or more at once counts one; see `BufferBudget`).
    pub send_buffer_growths: u64,
    /// Receive rings grown.
    pub recv_buffer_growths: u64,
    /// Connections refused a growth because the endpoint's `buffer_budget` was spent (once
    /// per connection).
    pub buffer_refusals: u64,
    /// Bytes of ring growth held now: the budget in use (a gauge, the one field here that
    /// is not monotonic).
    pub buffer_grown_bytes: u64,
    /// Indexed by `DropReason::index()`.
    #[serde(with = "drops_by_name")]
    pub drops: [u64; DropReason::COUNT],
    /// Connections established over IPv4 (of `connections_established`).
    pub accepted_ipv4: u64,
    /// Connections established over IPv6 (of `connections_established`).
    pub accepted_ipv6: u64,
    /// Path MTU messages (ICMP "fragmentation needed", ICMPv6 "packet too big") that lowered
    /// a connection's send MSS (RFC 1191, RFC 8201).
    pub pmtu_lowered: u64,
    /// Path MTU messages that changed nothing, for any of the four reasons below (their sum).
    pub pmtu_ignored: u64,
    /// Of `pmtu_ignored`: the MTU was not below what the connection already sends (a router
    /// answers every packet of a window it drops; after the first, the rest land here).
    pub pmtu_unchanged: u64,
    /// Of `pmtu_ignored`: the quoted sequence number was not in flight (outside SND.UNA to
    /// SND.NXT, RFC 5927 §4.1): forged, or about a segment acknowledged since.
    pub pmtu_stale: u64,
    /// Of `pmtu_ignored`: no connection has the quoted flow (closed, in TIME_WAIT, still in
    /// the SYN cache, or never one of ours).
    pub pmtu_unknown_flow: u64,
    /// Of `pmtu_ignored`: an IPv6 MTU below 1280, which RFC 8201 §4 says to discard. (An IPv4
    /// MTU below 576 is taken as 576, not ignored.)
    pub pmtu_below_minimum: u64,
    /// Of `retransmits`: segments resent at a lowered MSS after a path MTU message.
    pub pmtu_retransmits: u64,
}

/// `TcpStats::drops` as a map from `DropReason::name` (every reason present); names it does
/// not know are ignored when read back, so a newer gateway's file still reads.
mod drops_by_name {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::DropReason;

    pub fn serialize<S: Serializer>(
        drops: &[u64; DropReason::COUNT],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<&str, u64> = DropReason::ALL
            .iter()
            .map(|r| (r.name(), drops[r.index()]))
            .collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[u64; DropReason::COUNT], D::Error> {
        let named = BTreeMap::<String, u64>::deserialize(d)?;
        let mut drops = [0; DropReason::COUNT];
        for r in DropReason::ALL {
            drops[r.index()] = named.get(r.name()).copied().unwrap_or(0);
        }
        Ok(drops)
    }
}

impl TcpStats {
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Counts what HyStart++ decided on an ACK; `exit_segments` is the window an exit ended
    /// slow start at (ssthresh from then on), ignored for the other events.
    pub fn count_hystart(&mut self, event: HyStartEvent, exit_segments: u64) {
        match event {
            HyStartEvent::CssEntered => self.hystart_css_entries += 1,
            HyStartEvent::CssAbandoned => self.hystart_css_abandoned += 1,
            HyStartEvent::TrainExit => {
                self.hystart_train_exits += 1;
                self.hystart_train_exit_segments += exit_segments;
            }
            HyStartEvent::DelayExit => {
                self.hystart_delay_exits += 1;
                self.hystart_delay_exit_segments += exit_segments;
            }
        }
    }

    /// Adds `other`'s counts to these (totals across engines).
    pub fn add(&mut self, other: &TcpStats) {
        let TcpStats {
            segments_in,
            segments_out,
            bytes_in,
            bytes_out,
            retransmits,
            timeout_retransmits,
            probe_retransmits,
            fast_retransmits,
            rto_timeouts,
            rto_aborts,
            zero_window_probes,
            loss_probes,
            rack_lost,
            dsacks_sent,
            dsacks_received,
            ecn_negotiated,
            ecn_ce_received,
            ecn_reductions,
            hystart_css_entries,
            hystart_css_abandoned,
            hystart_train_exits,
            hystart_train_exit_segments,
            hystart_delay_exits,
            hystart_delay_exit_segments,
            cookies_sent,
            cookies_validated,
            cookies_failed,
            syn_cache_added,
            syn_cache_completed,
            syn_cache_expired,
            syn_cache_reset,
            syn_cache_overflows,
            syn_ack_retransmits,
            rsts_in,
            rsts_out,
            challenge_acks_sent,
            challenge_acks_suppressed,
            out_of_order_segments,
            time_wait_overflows,
            table_full,
            stateless_queue_overflows,
            connections_established,
            connections_closed,
            idle_timeouts,
            send_buffer_growths,
            recv_buffer_growths,
            buffer_refusals,
            buffer_grown_bytes,
            drops,
            accepted_ipv4,
            accepted_ipv6,
            pmtu_lowered,
            pmtu_ignored,
            pmtu_unchanged,
            pmtu_stale,
            pmtu_unknown_flow,
            pmtu_below_minimum,
            pmtu_retransmits,
        } = other;
        self.segments_in += segments_in;
        self.segments_out += segments_out;
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
        self.retransmits += retransmits;
        self.timeout_retransmits += timeout_retransmits;
        self.probe_retransmits += probe_retransmits;
        self.fast_retransmits += fast_retransmits;
        self.rto_timeouts += rto_timeouts;
        self.rto_aborts += rto_aborts;
        self.zero_window_probes += zero_window_probes;
        self.loss_probes += loss_probes;
        self.rack_lost += rack_lost;
        self.dsacks_sent += dsacks_sent;
        self.dsacks_received += dsacks_received;
        self.ecn_negotiated += ecn_negotiated;
        self.ecn_ce_received += ecn_ce_received;
        self.ecn_reductions += ecn_reductions;
        self.hystart_css_entries += hystart_css_entries;
        self.hystart_css_abandoned += hystart_css_abandoned;
        self.hystart_train_exits += hystart_train_exits;
        self.hystart_train_exit_segments += hystart_train_exit_segments;
        self.hystart_delay_exits += hystart_delay_exits;
        self.hystart_delay_exit_segments += hystart_delay_exit_segments;
        self.cookies_sent += cookies_sent;
        self.cookies_validated += cookies_validated;
        self.cookies_failed += cookies_failed;
        self.syn_cache_added += syn_cache_added;
        self.syn_cache_completed += syn_cache_completed;
        self.syn_cache_expired += syn_cache_expired;
        self.syn_cache_reset += syn_cache_reset;
        self.syn_cache_overflows += syn_cache_overflows;
        self.syn_ack_retransmits += syn_ack_retransmits;
        self.rsts_in += rsts_in;
        self.rsts_out += rsts_out;
        self.challenge_acks_sent += challenge_acks_sent;
        self.challenge_acks_suppressed += challenge_acks_suppressed;
        self.out_of_order_segments += out_of_order_segments;
        self.time_wait_overflows += time_wait_overflows;
        self.table_full += table_full;
        self.stateless_queue_overflows += stateless_queue_overflows;
        self.connections_established += connections_established;
        self.connections_closed += connections_closed;
        self.idle_timeouts += idle_timeouts;
        self.send_buffer_growths += send_buffer_growths;
        self.recv_buffer_growths += recv_buffer_growths;
        self.buffer_refusals += buffer_refusals;
        self.buffer_grown_bytes += buffer_grown_bytes;
        for (total, n) in self.drops.iter_mut().zip(drops) {
            *total += n;
        }
        self.accepted_ipv4 += accepted_ipv4;
        self.accepted_ipv6 += accepted_ipv6;
        self.pmtu_lowered += pmtu_lowered;
        self.pmtu_ignored += pmtu_ignored;
        self.pmtu_unchanged += pmtu_unchanged;
        self.pmtu_stale += pmtu_stale;
        self.pmtu_unknown_flow += pmtu_unknown_flow;
        self.pmtu_below_minimum += pmtu_below_minimum;
        self.pmtu_retransmits += pmtu_retransmits;
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }
}
