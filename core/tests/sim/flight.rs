//! Congestion control seen from the wire: CUBIC against NewReno after one loss, and slow
//! start with and without HyStart++ into a small bottleneck queue.
//!
//! [`FlightProbe`] wraps a server under simulation and reads, off the frames it sends and
//! receives, how many bytes it had in flight (highest sequence sent minus highest ACK seen) in
//! each round trip, and the round in which it first retransmitted. It can also drop one chosen
//! segment of new data, so two runs lose the same segment whatever their windows do.
//!
//! The comparison runs the engine over a long-fat link (100 ms RTT, 1 Gbit/s) with one
//! keep-alive connection downloading 16 MiB (two pipelined 8 MiB GETs), and drops the 200th data segment during slow
//! start, when the congestion window (not the receive window) limits the flight. Measured in
//! round trips, not time: how much of its flight each algorithm keeps after the loss, and how
//! many rounds it takes to have 90% of the pre-loss flight out again.
//!
//! The HyStart++ comparison is the path comparison's (`bench-results/paths.md`) worst case for
//! slow start: a 1 MiB download through a 10 Mbit/s bottleneck with a 64 KiB drop-tail queue,
//! at 1 ms and 20 ms base RTT. It counts the segments the queue dropped and the server
//! retransmitted, and the virtual time until the last byte was acknowledged.

use std::cell::RefCell;
use std::rc::Rc;

use xgate_core::tcp::{CongestionAlgorithm, TcpConfig};
use xgate_core::time::{Duration, Instant};

use super::client::SERVER_PORT;
use super::device::tcp_segment;
use super::engine_server::new_engine_with;
use super::http::{ConnPlan, Request, RequestKind, Workload, MIB};
use super::link::{Impairments, Profile};
use super::{SimConfig, SimServer};

/// What one frame says about the connection, as the probe needs it.
struct Seg {
    from_server: bool,
    syn: bool,
    seq: u32,
    ack: Option<u32>,
    /// Payload plus FIN.
    len: u32,
}

fn parse(frame: &[u8]) -> Option<Seg> {
    let (_, tcp) = tcp_segment(frame)?;
    Some(Seg {
        from_server: tcp.src_port() == SERVER_PORT,
        syn: tcp.syn(),
        seq: tcp.seq_number().0 as u32,
        ack: tcp.ack().then(|| tcp.ack_number().0 as u32),
        len: tcp.payload().len() as u32 + u32::from(tcp.fin()),
    })
}

/// A server under simulation with its flight measured per round trip (into a [`Flight`] the
/// test keeps a handle to, since the run consumes the server).
pub struct FlightProbe<S> {
    inner: S,
    flight: Rc<RefCell<Flight>>,
}

impl<S> FlightProbe<S> {
    pub fn new(inner: S, flight: Rc<RefCell<Flight>>) -> Self {
        FlightProbe { inner, flight }
    }
}

/// The measurements. One connection only: sequence numbers are taken relative to the first
/// SYN-ACK's.
#[derive(Debug, Default)]
pub struct Flight {
    /// Drop the server's segment of new data with this index (from 0), once.
    drop_nth: Option<u64>,
    new_segments: u64,
    /// The server's ISN + 1.
    base: Option<u32>,
    snd_max: u64,
    acked: u64,
    round_end: u64,
    round_max: u64,
    /// Most bytes in flight in each completed round trip.
    pub rounds: Vec<u64>,
    /// The round in which the server first sent a segment again.
    pub loss_round: Option<usize>,
    /// Segments the server sent again (data below its highest sequence sent).
    pub retransmits: u64,
    /// When the client sent its SYN, and its last ACK of new data.
    pub syn_at: Option<Instant>,
    pub last_ack_at: Option<Instant>,
}

impl Flight {
    /// Measures, and drops the server's `drop_nth` segment of new data.
    pub fn dropping(drop_nth: Option<u64>) -> Rc<RefCell<Flight>> {
        Rc::new(RefCell::new(Flight {
            drop_nth,
            ..Flight::default()
        }))
    }

    /// Notes a frame the server sends; `false`: the probe drops it.
    fn server_sends(&mut self, frame: &[u8]) -> bool {
        let Some(seg) = parse(frame).filter(|s| s.from_server) else {
            return true;
        };
        if seg.syn {
            self.base = Some(seg.seq.wrapping_add(1));
            return true;
        }
        let Some(base) = self.base else {
            return true;
        };
        if seg.len == 0 {
            return true;
        }
        let end = u64::from(seg.seq.wrapping_sub(base)) + u64::from(seg.len);
        if end <= self.snd_max {
            self.retransmits += 1;
            if self.loss_round.is_none() {
                self.loss_round = Some(self.rounds.len());
            }
            return true;
        }
        self.snd_max = end;
        self.round_max = self.round_max.max(self.snd_max - self.acked);
        let n = self.new_segments;
        self.new_segments += 1;
        self.drop_nth != Some(n)
    }

    /// Notes a frame the client sends: its ACK ends a round once it covers what was
    /// outstanding when the round began.
    fn client_sends(&mut self, now: Instant, frame: &[u8]) {
        if parse(frame).is_some_and(|s| s.syn && !s.from_server) && self.syn_at.is_none() {
            self.syn_at = Some(now);
        }
        let (Some(seg), Some(base)) = (parse(frame), self.base) else {
            return;
        };
        let Some(ack) = seg.ack.filter(|_| !seg.from_server) else {
            return;
        };
        let ack = u64::from(ack.wrapping_sub(base));
        if ack <= self.acked || ack > self.snd_max {
            return;
        }
        self.acked = ack;
        self.last_ack_at = Some(now);
        if self.acked >= self.round_end {
            self.rounds.push(self.round_max);
            self.round_end = self.snd_max;
            self.round_max = self.snd_max - self.acked;
        }
    }

    /// What happened to the flight after the first loss; `None` without a loss.
    pub fn recovery(&self) -> Option<Recovery> {
        let loss = self.loss_round?;
        // The loss shows one round after the lost segment was sent: the flight before it is
        // the larger of the two rounds before the retransmission.
        let pre_loss = *self.rounds.get(loss.checked_sub(2)?..loss)?.iter().max()?;
        let after = self.rounds.get(loss + 1..)?;
        let regain = pre_loss * 9 / 10;
        Some(Recovery {
            pre_loss,
            trough: after.iter().take(4).copied().min()?,
            rounds_to_regain: after.iter().position(|&f| f >= regain).map(|i| i + 1),
        })
    }
}

/// The flight around the first loss, in bytes and round trips.
#[derive(Debug)]
pub struct Recovery {
    /// Most bytes in flight in the two rounds before the loss showed.
    pub pre_loss: u64,
    /// Least of the four rounds after the one that retransmitted.
    pub trough: u64,
    /// Rounds after the retransmitting one until one has 90% of `pre_loss` in flight.
    pub rounds_to_regain: Option<usize>,
}

impl<S: SimServer> SimServer for FlightProbe<S> {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        self.flight.borrow_mut().client_sends(now, frame);
        self.inner.handle_frame(now, frame);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        loop {
            let n = self.inner.poll_transmit(now, buf)?;
            if self.flight.borrow_mut().server_sends(&buf[..n]) {
                return Some(n);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn connection_count(&self) -> usize {
        self.inner.connection_count()
    }
}

/// 100 ms round trip at 1 Gbit/s: a window of ~250 segments fills the path, far beyond what
/// NewReno regains quickly after halving. The link itself loses nothing: the probe drops the
/// one segment, so both algorithms lose the same one.
const LONG_FAT: Profile = {
    let imp = Impairments {
        delay: Duration::from_millis(50),
        bandwidth_bps: Some(1_000_000_000),
        ..Impairments::CLEAN
    };
    Profile {
        name: "longfat",
        c2s: imp,
        s2c: imp,
    }
};

/// Which new-data segment the comparison loses: in slow start's fifth or sixth round, while
/// the congestion window limits the flight.
const LOST_SEGMENT: u64 = 200;

fn long_download(congestion: CongestionAlgorithm) -> Recovery {
    let get = |close| Request {
        kind: RequestKind::Bytes(8 * MIB),
        close,
    };
    let mut cfg = SimConfig::new(1, LONG_FAT);
    cfg.replay_test = "sim::flight::cubic_regains_its_window_sooner_than_newreno_after_a_loss";
    cfg.workload = Some(Workload {
        conns: vec![ConnPlan {
            requests: vec![get(false), get(true)],
            pipeline: 2,
            abort_after: None,
        }],
        concurrency: 1,
    });
    let tcp = TcpConfig {
        congestion,
        // The flight may exceed the default 256 KiB ring; the client's 512 KiB receive window
        // bounds it.
        tx_buffer: 1 << 20,
        ..TcpConfig::default()
    };
    let flight = Flight::dropping(Some(LOST_SEGMENT));
    crate::check_server(&cfg, |now| {
        FlightProbe::new(new_engine_with(1, now, tcp), flight.clone())
    });
    let f = flight.borrow();
    println!("{congestion:?}: flight per round {:?}", f.rounds);
    f.recovery()
        .unwrap_or_else(|| panic!("{congestion:?}: no loss seen: {f:?}"))
}

#[test]
fn cubic_regains_its_window_sooner_than_newreno_after_a_loss() {
    let cubic = long_download(CongestionAlgorithm::Cubic);
    let newreno = long_download(CongestionAlgorithm::NewReno);
    println!("CUBIC {cubic:?}\nNewReno {newreno:?}");
    // Same slow start, same lost segment: the same flight before the loss.
    assert_eq!(cubic.pre_loss, newreno.pre_loss);
    // RFC 9438 §4.6 keeps 0.7 of the flight where RFC 5681 keeps half: 1.4 times as much.
    assert!(
        cubic.trough * 10 >= newreno.trough * 13,
        "CUBIC kept {} bytes in flight after the loss, NewReno {}",
        cubic.trough,
        newreno.trough
    );
    // W_cubic(t) climbs back on a clock of its own, steeply while far below W_max; NewReno
    // at half a segment per round trip (it grows per ACK, and the client ACKs every other
    // segment).
    let cubic_rounds = cubic.rounds_to_regain.expect("CUBIC regained its flight");
    let newreno_rounds = newreno.rounds_to_regain.unwrap_or(usize::MAX);
    assert!(
        cubic_rounds <= 20 && newreno_rounds > 3 * cubic_rounds,
        "rounds to regain 90% of the flight: CUBIC {cubic_rounds}, NewReno {newreno_rounds}"
    );
}

/// The emulated paths' bottleneck (`loadgen paths`): 10 Mbit/s each way, a drop-tail queue of
/// one bandwidth-delay product but at least 64 KiB, half the RTT each way.
fn bottleneck(rtt: Duration) -> Profile {
    let bps = 10_000_000u64;
    let bdp = usize::try_from(u128::from(bps / 8) * rtt.as_micros() / 1_000_000).unwrap_or(0);
    let imp = Impairments {
        delay: rtt / 2,
        bandwidth_bps: Some(bps),
        queue_bytes: Some(bdp.max(64 * 1024)),
        ..Impairments::CLEAN
    };
    Profile {
        name: "10mbit",
        c2s: imp,
        s2c: imp,
    }
}

/// One 1 MiB download over [`bottleneck`].
#[derive(Debug)]
struct Download {
    /// Frames the bottleneck queue dropped, server to client.
    tail_dropped: u64,
    /// Segments the server sent again.
    retransmits: u64,
    /// From the client's SYN to its ACK of the last byte.
    time: Duration,
    /// The round in which the server first retransmitted.
    loss_round: Option<usize>,
    /// Most bytes in flight in each round trip.
    rounds: Vec<u64>,
}

impl Download {
    /// The largest flight of the rounds before the first retransmission.
    fn flight_before_loss(&self) -> u64 {
        let end = self.loss_round.unwrap_or(self.rounds.len());
        self.rounds.iter().take(end).copied().max().unwrap_or(0)
    }
}

fn download(rtt: Duration, hystart: bool) -> Download {
    let mut cfg = SimConfig::new(1, bottleneck(rtt));
    cfg.replay_test = "sim::flight::hystart_leaves_slow_start_before_the_queue_overflows";
    cfg.workload = Some(Workload {
        conns: vec![ConnPlan {
            requests: vec![Request {
                kind: RequestKind::Bytes(MIB),
                close: true,
            }],
            pipeline: 1,
            abort_after: None,
        }],
        concurrency: 1,
    });
    let tcp = TcpConfig {
        hystart,
        ..TcpConfig::default()
    };
    let flight = Flight::dropping(None);
    let o = crate::check_server(&cfg, |now| {
        FlightProbe::new(new_engine_with(1, now, tcp), flight.clone())
    });
    let f = flight.borrow();
    let (Some(start), Some(end)) = (f.syn_at, f.last_ack_at) else {
        panic!("no transfer seen: {f:?}");
    };
    Download {
        tail_dropped: o.s2c.tail_dropped,
        retransmits: f.retransmits,
        time: end.saturating_duration_since(start),
        loss_round: f.loss_round,
        rounds: f.rounds.clone(),
    }
}

#[test]
fn hystart_leaves_slow_start_before_the_queue_overflows() {
    for rtt_ms in [1, 20, 80] {
        let rtt = Duration::from_millis(rtt_ms);
        let on = download(rtt, true);
        let off = download(rtt, false);
        println!("{rtt_ms} ms, HyStart++ on:  {on:?}\n{rtt_ms} ms, HyStart++ off: {off:?}");
        println!(
            "{rtt_ms} ms: largest flight before the first loss: on {}, off {}",
            on.flight_before_loss(),
            off.flight_before_loss()
        );
        // Without HyStart++ slow start runs into the queue and loses part of a window (RACK-TLP
        // repairs it quickly, but the drops are there).
        assert!(
            off.tail_dropped >= 20,
            "{rtt_ms} ms: standard slow start overflowed the queue: {off:?}"
        );
        // With it, the rising RTT ends slow start before the worst of the overflow: at most
        // two thirds of the drops and three quarters of the resends -- except at 20 ms.
        // HyStart++ grows by up to two segments per ACK (L = 2, `hystart.rs`), as Linux's
        // slow start does against a receiver that ACKs every second segment, where standard
        // slow start (L = 1) grows 1.5 times per round. This client ACKs every second
        // segment or after 10 ms and never on PSH, so no ACK train forms at 10 Mbit/s
        // (2.4 ms between ACKs), and the delay signal comes a round late: at 20 ms
        // HyStart++ dropped 39 segments to standard slow start's 34 (1 ms: 13 to 26; 80 ms:
        // 47 to 94). Through the path emulator, with Linux clients that ACK each pushed
        // segment, the bypass dropped none there (`loadgen paths`, docs/tcp.md). At 20 ms
        // the bound is only that it is not much worse.
        let (dropped, resent) = (on.tail_dropped, on.retransmits);
        let (dropped_off, resent_off) = (off.tail_dropped, off.retransmits);
        let bounded = if rtt_ms == 20 {
            dropped * 4 <= dropped_off * 5 && resent * 4 <= resent_off * 5
        } else {
            dropped * 3 <= dropped_off * 2 && resent * 4 <= resent_off * 3
        };
        assert!(
            bounded,
            "{rtt_ms} ms: HyStart++ {on:?}, standard slow start {off:?}"
        );
        assert!(
            on.time <= off.time,
            "{rtt_ms} ms: HyStart++ took {:?}, standard slow start {:?}",
            on.time,
            off.time
        );
    }
}
