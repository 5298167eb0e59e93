//! A packet reorderer on nfnetlink_queue: packets that an `iptables -j NFQUEUE` rule queues
//! are read from a raw `NETLINK_NETFILTER` socket and all accepted (`NF_ACCEPT`, unchanged),
//! but a random fraction is held back first and released only after a few later packets
//! have passed, or after a short time, whichever comes first, so they arrive out of order.
//!
//! This kernel's nftables has no `queue` statement (`CONFIG_NFT_QUEUE` is off), but the
//! xtables `NFQUEUE` target through iptables-nft's compat expression reaches the same queue.
//! The rules carry `--queue-bypass`, and the queue is configured fail-open, so a packet is
//! never dropped because this consumer is slow, full or gone.
//!
//! The socket is opened in the client's network namespace by a thread that `setns`es there
//! (a namespace is per thread, so the rest of the test is not moved). Stopping (or dropping)
//! releases every held packet, unbinds the queue and closes the socket (which also drops the
//! socket's reference to the namespace, so `ip netns del` really frees it).
//!
//! The socket and its netlink messages are [`xgate_testnet::nfqueue::QueueSocket`]; what is
//! held back, and for how long, is this module's.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xgate_testnet::nfqueue::QueueSocket;

/// What the reorderer does.
#[derive(Debug, Clone, Copy)]
pub struct ReorderConfig {
    /// The `--queue-num` of the iptables rules.
    pub queue: u16,
    /// Per mille of packets held back.
    pub hold_permille: u32,
    /// A held packet goes once this many later packets (drawn in 1..=max) were accepted...
    pub release_after_packets_max: u32,
    /// ...or once it has been held this long.
    pub max_hold: Duration,
    /// At most this many packets held at once; beyond it packets pass in order.
    pub max_held: usize,
    pub seed: u64,
}

/// What it did, read while it runs or after it stopped.
#[derive(Debug, Default)]
pub struct ReorderStats {
    pub packets: AtomicU64,
    pub held: AtomicU64,
    pub released_by_count: AtomicU64,
    pub released_by_time: AtomicU64,
    pub released_at_exit: AtomicU64,
    pub hold_full: AtomicU64,
}

impl ReorderStats {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "queued {} held {} (released after later packets {}, after time {}, at exit {}; hold queue full {})",
            g(&self.packets),
            g(&self.held),
            g(&self.released_by_count),
            g(&self.released_by_time),
            g(&self.released_at_exit),
            g(&self.hold_full)
        )
    }
}

/// The running reorderer; dropping it stops it (every held packet accepted first).
pub struct Reorderer {
    stop: Arc<AtomicBool>,
    stats: Arc<ReorderStats>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Reorderer {
    /// Binds queue `config.queue` in network namespace `netns` (a name under /run/netns) and
    /// starts serving it; returns once the queue is bound.
    pub fn start(netns: &str, config: ReorderConfig) -> io::Result<Reorderer> {
        let mut sock = QueueSocket::bind_in(netns, config.queue)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReorderStats::default());
        let thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("nfqueue".into())
                .spawn(move || serve(&mut sock, config, &stop, &stats))?
        };
        Ok(Reorderer {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &ReorderStats {
        &self.stats
    }

    /// Releases every held packet, unbinds and closes; the thread's error, if it had one.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("nfqueue thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Reorderer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// xorshift64*: enough randomness to pick packets, no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Held {
    id: u32,
    /// Released when `passed` reaches this.
    after_passed: u64,
    deadline: Instant,
}

fn serve(
    sock: &mut QueueSocket,
    config: ReorderConfig,
    stop: &AtomicBool,
    stats: &ReorderStats,
) -> io::Result<()> {
    let mut rng = Rng(config.seed | 1);
    let mut held: VecDeque<Held> = VecDeque::with_capacity(config.max_held);
    let mut passed: u64 = 0;
    let mut rx = vec![0u8; 256 * 1024];
    let mut ids = Vec::new();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let now = Instant::now();
        // Time-based releases, oldest first.
        while held.front().is_some_and(|h| h.deadline <= now) {
            let h = held.pop_front().unwrap();
            sock.accept(h.id)?;
            stats.released_by_time.fetch_add(1, Ordering::Relaxed);
        }
        let timeout = held
            .iter()
            .map(|h| h.deadline.saturating_duration_since(now))
            .min()
            .map_or(Duration::from_millis(50), |d| {
                d.clamp(Duration::from_millis(1), Duration::from_millis(50))
            });
        match sock.wait_readable(timeout) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => break Err(e),
        }
        ids.clear();
        if let Err(e) = sock.read_packet_ids(&mut rx, &mut ids) {
            break Err(e);
        }
        for &id in &ids {
            stats.packets.fetch_add(1, Ordering::Relaxed);
            let hold = rng.below(1000) < u64::from(config.hold_permille);
            if hold && held.len() < config.max_held {
                let after = 1 + rng.below(u64::from(config.release_after_packets_max.max(1)));
                held.push_back(Held {
                    id,
                    after_passed: passed + after,
                    deadline: Instant::now() + config.max_hold,
                });
                stats.held.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if hold {
                stats.hold_full.fetch_add(1, Ordering::Relaxed);
            }
            sock.accept(id)?;
            passed += 1;
            // Held packets whose count of later packets is reached go now, behind this one.
            let mut i = 0;
            while i < held.len() {
                if held[i].after_passed <= passed {
                    let h = held.remove(i).unwrap();
                    sock.accept(h.id)?;
                    stats.released_by_count.fetch_add(1, Ordering::Relaxed);
                } else {
                    i += 1;
                }
            }
        }
    };
    // Whatever happened, nothing stays held, and nothing already queued is left for the
    // unbind (which would drop it): accept what is waiting, then unbind.
    for h in held.drain(..) {
        let _ = sock.accept(h.id);
        stats.released_at_exit.fetch_add(1, Ordering::Relaxed);
    }
    ids.clear();
    while let Ok(true) = sock.read_packet_ids(&mut rx, &mut ids) {
        for id in ids.drain(..) {
            stats.packets.fetch_add(1, Ordering::Relaxed);
            let _ = sock.accept(id);
        }
    }
    let _ = sock.unbind();
    result
}
