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
//! Protocol (linux/netfilter/nfnetlink_queue.h): every message is a `nlmsghdr`, then a
//! `nfgenmsg` (family, version 0, queue number big-endian), then netlink attributes. Config:
//! `NFQNL_MSG_CONFIG` with `NFQA_CFG_CMD` {BIND}, then `NFQA_CFG_PARAMS` {copy range, copy
//! mode PACKET}, `NFQA_CFG_QUEUE_MAXLEN` and `NFQA_CFG_FLAGS`/`MASK` fail-open. Each queued
//! packet comes as `NFQNL_MSG_PACKET` with `NFQA_PACKET_HDR` {packet id, hw proto, hook}; the
//! answer is `NFQNL_MSG_VERDICT` with `NFQA_VERDICT_HDR` {verdict, id}.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_PACKET: u8 = 2;
const NF_ACCEPT: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// Packets the kernel may hold for this queue before fail-open accepts the rest unqueued.
const KERNEL_QUEUE_MAXLEN: u32 = 4096;

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
        let ns = File::open(format!("/run/netns/{netns}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReorderStats::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("nfqueue".into())
                .spawn(move || {
                    let sock = match enter_and_bind(&ns, config.queue) {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                            return Err(e);
                        }
                    };
                    let mut sock = sock;
                    serve(&mut sock, config, &stop, &stats)
                })?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Reorderer {
                stop,
                stats,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other("nfqueue thread died before binding")),
        }
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

/// The netlink socket, bound to one queue.
struct QueueSocket {
    fd: OwnedFd,
    queue: u16,
    seq: u32,
}

fn enter_and_bind(ns: &File, queue: u16) -> io::Result<QueueSocket> {
    // SAFETY: setns on a descriptor we own, for this thread only (CLONE_NEWNET moves the
    // calling thread; the thread is ours and ends with this consumer).
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A large receive buffer: a packet message lost to ENOBUFS would leave its packet queued
    // until the queue is unbound.
    let size: libc::c_int = 8 << 20;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    // SAFETY: an all-zero sockaddr_nl is valid (nl_pid 0: the kernel assigns one).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: bind with a pointer to a live sockaddr_nl and its size.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let mut s = QueueSocket { fd, queue, seq: 0 };
    s.config_cmd(NFQNL_CFG_CMD_BIND)?;
    // Copy mode packet with 128 bytes (headers; the verdict does not change the packet),
    // a long kernel queue, fail-open when it is full.
    let mut params = [0u8; 5];
    params[..4].copy_from_slice(&128u32.to_be_bytes());
    params[4] = NFQNL_COPY_PACKET;
    let flags = NFQA_CFG_F_FAIL_OPEN.to_be_bytes();
    s.request(
        NFQNL_MSG_CONFIG,
        &[
            (NFQA_CFG_PARAMS, &params),
            (NFQA_CFG_QUEUE_MAXLEN, &KERNEL_QUEUE_MAXLEN.to_be_bytes()),
            (NFQA_CFG_MASK, &flags),
            (NFQA_CFG_FLAGS, &flags),
        ],
        true,
    )?;
    Ok(s)
}

impl QueueSocket {
    fn config_cmd(&mut self, cmd: u8) -> io::Result<()> {
        // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }
        let body = [cmd, 0, 0, libc::AF_INET as u8];
        self.request(NFQNL_MSG_CONFIG, &[(NFQA_CFG_CMD, &body)], true)
    }

    /// Sends one message; with `ack`, waits for the kernel's answer to it and returns its
    /// error. Packet messages that arrive meanwhile cannot exist before the bind, and the
    /// later config messages are sent before any rule queues anything.
    fn request(&mut self, msg: u16, attrs: &[(u16, &[u8])], ack: bool) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; NLMSG_HDRLEN]);
        // nfgenmsg: family, version, res_id (the queue) big-endian.
        buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        buf.extend_from_slice(&self.queue.to_be_bytes());
        for (kind, data) in attrs {
            let len = 4 + data.len();
            buf.extend_from_slice(&(len as u16).to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.extend_from_slice(data);
            buf.resize(buf.len().next_multiple_of(4), 0);
        }
        let total = buf.len() as u32;
        let flags = NLM_F_REQUEST | if ack { NLM_F_ACK } else { 0 };
        buf[0..4].copy_from_slice(&total.to_ne_bytes());
        buf[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // SAFETY: send(2) of a live buffer with its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if !ack {
            return Ok(());
        }
        let mut rx = [0u8; 8192];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut rx, 0)?;
            for m in Messages(&rx[..n]) {
                if m.kind == NLMSG_ERROR && m.seq == self.seq {
                    let code = i32::from_ne_bytes(m.body[..4].try_into().unwrap());
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
            }
        }
    }

    fn verdict(&mut self, id: u32) -> io::Result<()> {
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
        hdr[4..].copy_from_slice(&id.to_be_bytes());
        self.request(NFQNL_MSG_VERDICT, &[(NFQA_VERDICT_HDR, &hdr)], false)
    }
}

fn recv(fd: RawFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    loop {
        // SAFETY: recv(2) into a live, writable buffer of that length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One netlink message of a datagram.
struct Message<'a> {
    kind: u16,
    seq: u32,
    body: &'a [u8],
}

/// The messages of one datagram (malformed tails are ignored).
struct Messages<'a>(&'a [u8]);

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;
    fn next(&mut self) -> Option<Message<'a>> {
        let b = self.0;
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let m = Message {
            kind: u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            seq: u32::from_ne_bytes(b[8..12].try_into().unwrap()),
            body: &b[NLMSG_HDRLEN..len],
        };
        self.0 = &b[len.next_multiple_of(4).min(b.len())..];
        Some(m)
    }
}

/// The packet id of an `NFQNL_MSG_PACKET` body (nfgenmsg, then attributes).
fn packet_id(body: &[u8]) -> Option<u32> {
    let mut a = body.get(NFGENMSG_LEN..)?;
    while a.len() >= 4 {
        let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
        let kind = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
        if len < 4 || len > a.len() {
            return None;
        }
        if kind == NFQA_PACKET_HDR && len >= 8 {
            return Some(u32::from_be_bytes(a[4..8].try_into().unwrap()));
        }
        a = &a[len.next_multiple_of(4).min(a.len())..];
    }
    None
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
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let now = Instant::now();
        // Time-based releases, oldest first.
        while held.front().is_some_and(|h| h.deadline <= now) {
            let h = held.pop_front().unwrap();
            sock.verdict(h.id)?;
            stats.released_by_time.fetch_add(1, Ordering::Relaxed);
        }
        let timeout_ms = held
            .iter()
            .map(|h| h.deadline.saturating_duration_since(now))
            .min()
            .map_or(50, |d| d.as_millis().clamp(1, 50) as i32);
        let mut pfd = libc::pollfd {
            fd: sock.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one live pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break Err(e);
        }
        if r == 0 {
            continue;
        }
        let n = match recv(sock.fd.as_raw_fd(), &mut rx, libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // ENOBUFS: messages were lost (their packets stay queued until unbind); go on.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) => break Err(e),
        };
        let ids: Vec<u32> = Messages(&rx[..n])
            .filter(|m| m.kind == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
            .filter_map(|m| packet_id(m.body))
            .collect();
        for id in ids {
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
            sock.verdict(id)?;
            passed += 1;
            // Held packets whose count of later packets is reached go now, behind this one.
            let mut i = 0;
            while i < held.len() {
                if held[i].after_passed <= passed {
                    let h = held.remove(i).unwrap();
                    sock.verdict(h.id)?;
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
        let _ = sock.verdict(h.id);
        stats.released_at_exit.fetch_add(1, Ordering::Relaxed);
    }
    while let Ok(n) = recv(sock.fd.as_raw_fd(), &mut rx, libc::MSG_DONTWAIT) {
        let ids: Vec<u32> = Messages(&rx[..n])
            .filter(|m| m.kind == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
            .filter_map(|m| packet_id(m.body))
            .collect();
        for id in ids {
            stats.packets.fetch_add(1, Ordering::Relaxed);
            let _ = sock.verdict(id);
        }
    }
    let _ = sock.request(
        NFQNL_MSG_CONFIG,
        &[(
            NFQA_CFG_CMD,
            &[NFQNL_CFG_CMD_UNBIND, 0, 0, libc::AF_INET as u8],
        )],
        false,
    );
    result
}
