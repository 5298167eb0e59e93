//! An in-memory Ethernet link in virtual time: one queue per direction, each with its own seeded
//! impairments (loss, duplication, reordering, corruption, delay + jitter, bandwidth and a
//! drop-tail queue bound).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use xgate_core::time::{Duration, Instant};

use super::rng::{Fnv, Rng};

/// What one direction of the link does to the frames it carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairments {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by an extra delay drawn from `reorder_delay`, so
    /// frames sent after it overtake it.
    pub reorder: f64,
    pub reorder_delay: (Duration, Duration),
    /// Probability that one random bit a checksum covers is flipped (see [`corrupt_ip_bit`]).
    pub corrupt: f64,
    /// Propagation delay, plus a uniform extra in `0..=jitter`. Jitter alone never reorders:
    /// frames not picked for reordering keep their order.
    pub delay: Duration,
    pub jitter: Duration,
    /// Serialisation rate in bits per second (`None`: infinitely fast).
    pub bandwidth_bps: Option<u64>,
    /// Drop-tail bound on the bytes waiting to be serialised (only with `bandwidth_bps`).
    pub queue_bytes: Option<usize>,
}

impl Impairments {
    pub const CLEAN: Impairments = Impairments {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: (Duration::ZERO, Duration::ZERO),
        corrupt: 0.0,
        delay: Duration::from_micros(100),
        jitter: Duration::ZERO,
        bandwidth_bps: None,
        queue_bytes: None,
    };
}

/// A named pair of impairments, client->server and server->client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub c2s: Impairments,
    pub s2c: Impairments,
}

const fn symmetric(name: &'static str, imp: Impairments) -> Profile {
    Profile {
        name,
        c2s: imp,
        s2c: imp,
    }
}

const MS: Duration = Duration::from_millis(1);

/// Every profile the harness knows, in the order the many-seed test cycles through them.
pub const PROFILES: &[Profile] = &[
    symmetric("clean", Impairments::CLEAN),
    symmetric(
        "loss1",
        Impairments {
            loss: 0.01,
            delay: MS,
            jitter: Duration::from_micros(200),
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "loss5",
        Impairments {
            loss: 0.05,
            delay: MS,
            jitter: Duration::from_micros(200),
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "reorder10",
        Impairments {
            reorder: 0.10,
            reorder_delay: (Duration::from_micros(100), Duration::from_millis(3)),
            delay: MS,
            jitter: Duration::from_micros(300),
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "reorder25",
        Impairments {
            reorder: 0.25,
            reorder_delay: (Duration::from_micros(100), Duration::from_millis(5)),
            delay: MS,
            jitter: Duration::from_micros(300),
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "dup1",
        Impairments {
            duplicate: 0.01,
            delay: MS,
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "dup5",
        Impairments {
            duplicate: 0.05,
            delay: MS,
            jitter: Duration::from_micros(100),
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "corrupt",
        Impairments {
            corrupt: 0.005,
            delay: MS,
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "bottleneck",
        Impairments {
            delay: Duration::from_millis(2),
            bandwidth_bps: Some(100_000_000),
            queue_bytes: Some(96 * 1024),
            ..Impairments::CLEAN
        },
    ),
    symmetric(
        "combined",
        Impairments {
            loss: 0.01,
            duplicate: 0.01,
            reorder: 0.10,
            reorder_delay: (Duration::from_micros(100), Duration::from_millis(4)),
            corrupt: 0.005,
            delay: Duration::from_millis(2),
            jitter: Duration::from_micros(500),
            bandwidth_bps: Some(200_000_000),
            queue_bytes: Some(256 * 1024),
        },
    ),
    // Random loss on a path whose bottleneck queue also drops (issue 14's lossy paths): what
    // RACK-TLP is for.
    symmetric(
        "loss2_bottleneck",
        Impairments {
            loss: 0.015,
            delay: Duration::from_millis(5),
            jitter: Duration::from_micros(200),
            bandwidth_bps: Some(50_000_000),
            queue_bytes: Some(64 * 1024),
            ..Impairments::CLEAN
        },
    ),
];

pub fn profile(name: &str) -> Option<Profile> {
    PROFILES.iter().copied().find(|p| p.name == name)
}

/// What happened on one direction, for reports and sanity checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub tail_dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub bytes: u64,
}

struct InFlight {
    at: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed, so `BinaryHeap` pops the earliest (time, then send order) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of the link.
pub struct Direction {
    imp: Impairments,
    rng: Rng,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    /// When the serialiser is free again (bandwidth model).
    busy_until: Instant,
    /// Latest delivery time handed to an in-order frame: later in-order frames never overtake it.
    last_in_order: Instant,
    pub stats: DirStats,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Direction {
    pub fn new(imp: Impairments, rng: Rng) -> Self {
        Direction {
            imp,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            busy_until: Instant::ZERO,
            last_in_order: Instant::ZERO,
            stats: DirStats::default(),
        }
    }

    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo, hi) = (micros(lo), micros(hi).max(micros(lo)));
        Duration::from_micros(self.rng.range(lo, hi))
    }

    /// Hands a frame to the link at `now`.
    pub fn send(&mut self, now: Instant, frame: &[u8]) {
        self.stats.sent += 1;
        self.stats.bytes += frame.len() as u64;
        let imp = self.imp;
        // Serialisation at the sender's interface, with a drop-tail queue in front of it.
        let mut departs = now;
        if let Some(bps) = imp.bandwidth_bps {
            let backlog_us = micros(self.busy_until.saturating_duration_since(now));
            let backlog_bytes = backlog_us.saturating_mul(bps) / 8_000_000;
            if let Some(limit) = imp.queue_bytes {
                if backlog_bytes as usize + frame.len() > limit {
                    self.stats.tail_dropped += 1;
                    return;
                }
            }
            let tx_us = (frame.len() as u64 * 8 * 1_000_000).div_ceil(bps);
            departs = self.busy_until.max(now) + Duration::from_micros(tx_us);
            self.busy_until = departs;
        }
        if self.rng.chance(imp.loss) {
            self.stats.lost += 1;
            return;
        }
        let jitter = self.uniform(Duration::ZERO, imp.jitter);
        let mut at = departs + imp.delay + jitter;
        if self.rng.chance(imp.reorder) {
            self.stats.reordered += 1;
            at += self.uniform(imp.reorder_delay.0, imp.reorder_delay.1);
        } else {
            at = at.max(self.last_in_order);
            self.last_in_order = at;
        }
        let copies = if self.rng.chance(imp.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let mut frame = frame.to_vec();
            if self.rng.chance(imp.corrupt) && corrupt_ip_bit(&mut self.rng, &mut frame) {
                self.stats.corrupted += 1;
            }
            let extra = if copy == 0 {
                Duration::ZERO
            } else {
                self.uniform(Duration::ZERO, imp.jitter + Duration::from_micros(200))
            };
            self.seq += 1;
            self.queue.push(InFlight {
                at: at + extra,
                seq: self.seq,
                frame,
            });
        }
    }

    /// The next frame due at or before `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.peek()?.at > now {
            return None;
        }
        self.stats.delivered += 1;
        self.queue.pop().map(|f| f.frame)
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|f| f.at)
    }
}

/// Flips one random bit of an Ethernet frame's IP packet that a checksum covers, so one end
/// must drop it: in IPv4, anywhere (header checksum, TCP checksum); in IPv6, which has no
/// header checksum, from the addresses on (the TCP checksum's pseudo-header and the segment).
/// Returns false for other frames.
pub fn corrupt_ip_bit(rng: &mut Rng, frame: &mut [u8]) -> bool {
    const ETH: usize = 14;
    let (from, end) = match frame.get(12..14) {
        Some([0x08, 0x00]) if frame.len() >= ETH + 20 => {
            let total = usize::from(u16::from_be_bytes([frame[ETH + 2], frame[ETH + 3]]));
            (ETH, ETH + total)
        }
        Some([0x86, 0xdd]) if frame.len() >= ETH + 40 => {
            let payload = usize::from(u16::from_be_bytes([frame[ETH + 4], frame[ETH + 5]]));
            // No checksum covers version, traffic class, flow label, payload length, next
            // header or hop limit: a flip there could pass unnoticed (an Ethernet FCS would
            // have caught it).
            (ETH + 8, ETH + 40 + payload)
        }
        _ => return false,
    };
    let end = end.min(frame.len());
    if end <= from {
        return false;
    }
    let bit = rng.below(((end - from) * 8) as u64) as usize;
    frame[from + bit / 8] ^= 1 << (bit % 8);
    true
}

/// Both directions plus the trace hash of everything that crossed the link.
pub struct Link {
    pub c2s: Direction,
    pub s2c: Direction,
    pub trace: Fnv,
}

impl Link {
    pub fn new(profile: &Profile, seed: u64) -> Self {
        Link {
            c2s: Direction::new(profile.c2s, Rng::fork(seed, 1)),
            s2c: Direction::new(profile.s2c, Rng::fork(seed, 2)),
            trace: Fnv::default(),
        }
    }

    /// Records a delivery in the trace hash.
    pub fn record(&mut self, now: Instant, dir: u8, frame: &[u8]) {
        self.trace.u64(now.as_micros());
        self.trace.bytes(&[dir]);
        self.trace.u64(frame.len() as u64);
        self.trace.bytes(frame);
    }

    pub fn next_at(&self) -> Option<Instant> {
        match (self.c2s.next_at(), self.s2c.next_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
