//! The step loop: deliver what the link has due, let the server and the client react, then jump
//! virtual time to the earliest wake-up (link delivery, client `poll_at`, server
//! `poll_timeout`). Nothing sleeps; a stuck run fails with the seed and a replay command.

use std::fmt;

use xgate_core::time::{Duration, Instant};
use xgate_core::wire::TcpFlags;

use smoltcp::wire::{
    EthernetFrame, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, PrettyPrinter, TcpPacket,
};

use super::client::{Client, ClientStats, Family, CLIENT_MAC, NEIGHBOURS, SERVER_PORT};
use super::device::{for_the_kernel, neighbour_reply, ETH_HEADER, MTU};
use super::http::Workload;
use super::link::{DirStats, Link, Profile};
use super::rng::Rng;
use super::SimServer;

/// One run's parameters. `seed` and `profile` (plus these defaults) fully determine the run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub profile: Profile,
    /// Upper bound on connections in the workload (it picks between half and all of it).
    pub max_conns: usize,
    /// Give up (and fail) after this much virtual time ...
    pub max_virtual: Duration,
    /// ... or this many steps.
    pub max_steps: u64,
    /// The test that replays a failure (its full path, for `--exact`; named in the failure
    /// message).
    pub replay_test: &'static str,
    /// Print every frame as it is delivered or dropped (`SIM_TRACE=1` in the tests).
    pub print_frames: bool,
    /// The requests to make instead of the seed's (a test that needs one particular
    /// transfer, such as one long download).
    pub workload: Option<Workload>,
    /// What the client's TCP offers.
    pub client: ClientShape,
}

/// The client's TCP: its IP family, its path MTU (its SYN's MSS is this minus 40, or 60 over
/// IPv6) and whether it sends timestamps. smoltcp always offers window scale and SACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientShape {
    pub family: Family,
    pub mtu: usize,
    pub timestamps: bool,
}

impl Default for ClientShape {
    fn default() -> Self {
        ClientShape {
            family: Family::V4,
            mtu: MTU,
            timestamps: true,
        }
    }
}

/// Frames the client sent that the harness took off the link in the kernel's place
/// ([`for_the_kernel`]: ARP, ICMPv6), so the server under test never saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelFrames {
    /// ARP requests and Neighbour Solicitations answered.
    pub answered: u64,
    /// Anything else: dropped, as no reply is owed.
    pub unanswered: u64,
}

/// The server's SYN-ACKs and segments, as the client received them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    pub syn_acks: u64,
    pub syn_acks_with_window_scale: u64,
    pub syn_acks_with_sack: u64,
    pub syn_acks_with_timestamps: u64,
    /// Largest TCP payload the server sent.
    pub max_payload: usize,
}

impl ServerOptions {
    fn record(&mut self, frame: &[u8]) {
        let Ok(f) = xgate_core::wire::parse_tcp_frame(frame) else {
            return;
        };
        let o = &f.tcp.options;
        if f.tcp.flags.contains(TcpFlags::SYN) {
            self.syn_acks += 1;
            self.syn_acks_with_window_scale += u64::from(o.window_scale.is_some());
            self.syn_acks_with_sack += u64::from(o.sack_permitted);
            self.syn_acks_with_timestamps += u64::from(o.timestamps.is_some());
        }
        self.max_payload = self.max_payload.max(f.payload.len());
    }
}

/// Connections per run unless a test says otherwise.
pub const DEFAULT_CONNS: usize = 16;

impl SimConfig {
    pub fn new(seed: u64, profile: Profile) -> Self {
        SimConfig {
            seed,
            profile,
            max_conns: DEFAULT_CONNS,
            // Virtual time is cheap (an idle gap is one step), and smoltcp's RTO backs off to
            // 60 s: runs under loss5 have taken 9500 s. Stalls fail sooner ("nothing
            // scheduled"), livelocks on `max_steps`.
            max_virtual: Duration::from_secs(24 * 3600),
            max_steps: 20_000_000,
            replay_test: "replay",
            client: ClientShape::default(),
            print_frames: false,
            workload: None,
        }
    }

    /// `new` with an IPv6 client.
    pub fn ipv6(seed: u64, profile: Profile) -> Self {
        let mut cfg = SimConfig::new(seed, profile);
        cfg.client.family = Family::V6;
        cfg
    }
}

/// What a successful run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// FNV-1a over every delivered frame (time, direction, bytes) and every completed response.
    pub trace_hash: u64,
    pub client: ClientStats,
    pub virtual_time: Duration,
    /// Longest stretch of virtual time in which the link delivered nothing (the end's TIME-WAIT
    /// included): a stall detector, since a peer that stalls until a retransmission pokes it
    /// still passes.
    pub max_quiet: Duration,
    pub steps: u64,
    pub c2s: DirStats,
    pub s2c: DirStats,
    pub server_options: ServerOptions,
    pub client_kernel: KernelFrames,
    /// The server's ARP requests and Neighbour Solicitations the harness answered as the
    /// client's kernel would (the engine sends none: it answers the MAC a segment came from).
    pub server_resolutions: u64,
}

/// A failed run: what went wrong and how to run it again.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub profile: &'static str,
    pub message: String,
    pub virtual_time: Duration,
    pub steps: u64,
    pub pending: String,
    /// (u32 and the client shape's fields apart keep `Failure` small as the `Err` of `run`.)
    pub server_connections: u32,
    pub replay_test: &'static str,
    pub client_family: Family,
    pub client_mtu: u16,
    pub client_timestamps: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation failed: {}", self.message)?;
        writeln!(
            f,
            "  seed {} profile {} at virtual {:?} after {} steps; server holds {} connections",
            self.seed, self.profile, self.virtual_time, self.steps, self.server_connections
        )?;
        writeln!(f, "  client: {}", self.pending)?;
        let mut shape = String::new();
        if self.client_family != Family::V4 {
            shape += &format!("SIM_FAMILY={} ", self.client_family.number());
        }
        if usize::from(self.client_mtu) != MTU {
            shape += &format!("SIM_CLIENT_MTU={} ", self.client_mtu);
        }
        if !self.client_timestamps {
            shape += "SIM_CLIENT_NO_TS=1 ";
        }
        write!(
            f,
            "  replay: {shape}SIM_SEED={} SIM_PROFILE={} cargo test --release -p xgate-core --test simulation {} -- --exact --nocapture",
            self.seed, self.profile, self.replay_test
        )
    }
}

/// Runs one simulation against the server `make_server` builds at the start time.
pub fn run<S: SimServer>(
    cfg: &SimConfig,
    make_server: impl FnOnce(Instant) -> S,
) -> Result<Outcome, Failure> {
    let start = Instant::from_secs(1);
    let mut now = start;
    let workload = match &cfg.workload {
        Some(w) => w.clone(),
        None => Workload::generate(&mut Rng::fork(cfg.seed, 3), cfg.max_conns),
    };
    let expected_requests = workload.request_count();
    let mut client = Client::new(workload, Rng::fork(cfg.seed, 4), now, cfg.client);
    let mut server_options = ServerOptions::default();
    let mut server = make_server(now);
    let mut link = Link::new(&cfg.profile, cfg.seed);
    let mut client_kernel = KernelFrames::default();
    let mut server_resolutions = 0;
    let mut buf = vec![0u8; 4096];
    let mut steps = 0u64;
    let mut last_delivery = now;
    let mut max_quiet = Duration::ZERO;

    let result = loop {
        steps += 1;
        if steps > cfg.max_steps {
            break Err(format!("step bound {} reached", cfg.max_steps));
        }
        if now - start > cfg.max_virtual {
            break Err(format!("virtual time bound {:?} reached", cfg.max_virtual));
        }
        let mut progress = false;
        if link.next_at().is_some_and(|t| t <= now) {
            max_quiet = max_quiet.max(now - last_delivery);
            last_delivery = now;
        }
        while let Some(frame) = link.c2s.pop_due(now) {
            link.record(now, 0, &frame);
            if cfg.print_frames {
                print_frame(now, "c->s", &frame);
            }
            server.handle_frame(now, &frame);
            progress = true;
        }
        while let Some(frame) = link.s2c.pop_due(now) {
            link.record(now, 1, &frame);
            if cfg.print_frames {
                print_frame(now, "s->c", &frame);
            }
            client.device.rx.push_back(frame);
            progress = true;
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        let mut bad_frame = None;
        while let Some(n) = server.poll_transmit(now, &mut buf) {
            if !(ETH_HEADER..=ETH_HEADER + MTU).contains(&n) {
                bad_frame = Some(format!(
                    "server wrote a {n}-byte frame (Ethernet frames here are {ETH_HEADER}..={} bytes)",
                    ETH_HEADER + MTU
                ));
                break;
            }
            let frame = &buf[..n];
            // The client's kernel would answer these; anything else must be TCP to the client.
            if let Some(reply) = neighbour_reply(frame, &NEIGHBOURS) {
                server_resolutions += 1;
                server.handle_frame(now, &reply);
                continue;
            }
            if let Err(e) = check_server_frame(frame, &cfg.client) {
                bad_frame = Some(e);
                break;
            }
            server_options.record(frame);
            link.s2c.send(now, frame);
            progress = true;
        }
        if let Some(e) = bad_frame {
            break Err(e);
        }
        if let Err(e) = client.poll(now, &mut link.trace) {
            break Err(e);
        }
        while let Some(frame) = client.device.tx.pop_front() {
            if for_the_kernel(&frame) {
                if let Some(reply) = client_kernel.answer(&frame) {
                    client.device.rx.push_back(reply);
                }
                continue;
            }
            link.c2s.send(now, &frame);
        }
        progress |= !client.device.rx.is_empty();
        if client.done() && server.connection_count() == 0 {
            break if client.stats.requests == expected_requests {
                Ok(())
            } else {
                Err(format!(
                    "{} of {expected_requests} requests answered",
                    client.stats.requests
                ))
            };
        }
        if progress {
            continue;
        }
        let next = [link.next_at(), client.poll_at(now), server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) => now = t.max(now + Duration::from_micros(1)),
            None if client.done() => {
                break Err(format!(
                    "client finished but the server still holds {} connections and set no timer",
                    server.connection_count()
                ))
            }
            None => break Err("nothing scheduled: client, server and link all idle".into()),
        }
    };
    match result {
        Ok(()) => {
            let mut trace = link.trace;
            trace.u64(steps);
            trace.u64(now.as_micros());
            Ok(Outcome {
                trace_hash: trace.0,
                client: client.stats,
                virtual_time: now - start,
                max_quiet: max_quiet.max(now - last_delivery),
                steps,
                c2s: link.c2s.stats,
                s2c: link.s2c.stats,
                server_options,
                client_kernel,
                server_resolutions,
            })
        }
        Err(message) => Err(Failure {
            seed: cfg.seed,
            profile: cfg.profile.name,
            message,
            virtual_time: now - start,
            steps,
            pending: client.describe_pending(),
            server_connections: server.connection_count().try_into().unwrap_or(u32::MAX),
            replay_test: cfg.replay_test,
            client_family: cfg.client.family,
            client_mtu: cfg.client.mtu.try_into().unwrap_or(u16::MAX),
            client_timestamps: cfg.client.timestamps,
        }),
    }
}

fn print_frame(now: Instant, dir: &str, frame: &[u8]) {
    println!(
        "{:>12.6} {dir} {}",
        now.as_micros() as f64 / 1e6,
        PrettyPrinter::<EthernetFrame<&[u8]>>::new("", &frame)
    );
}

impl KernelFrames {
    fn answer(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let reply = neighbour_reply(frame, &NEIGHBOURS);
        match reply {
            Some(_) => self.answered += 1,
            None => self.unanswered += 1,
        }
        reply
    }
}

/// Every frame the server sends must be well formed and addressed to the client: Ethernet to the
/// client's MAC, IP of the client's family (IPv4 with a valid header checksum and no
/// fragmentation, IPv6 with TCP as its next header), no larger than the client's path MTU,
/// TCP from the server's port with a valid checksum.
pub fn check_server_frame(frame: &[u8], client: &ClientShape) -> Result<(), String> {
    let bad = |what: &str| {
        Err(format!(
            "server sent a bad frame ({what}): {}",
            PrettyPrinter::<EthernetFrame<&[u8]>>::new("", &frame)
        ))
    };
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return bad("short Ethernet frame");
    };
    if eth.dst_addr() != CLIENT_MAC {
        return bad("Ethernet destination is not the client");
    }
    let family = client.family;
    if eth.ethertype() != family.ethertype() {
        return bad("not the client's IP family");
    }
    let (src, dst, next_header, ip_len, segment) = match family {
        Family::V4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return bad("truncated IPv4");
            };
            if !ip.verify_checksum() {
                return bad("IPv4 header checksum");
            }
            if ip.more_frags() || ip.frag_offset() != 0 {
                return bad("fragment");
            }
            let (src, dst) = (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            );
            let len = usize::from(ip.total_len());
            (src, dst, ip.next_header(), len, ip.payload())
        }
        Family::V6 => {
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                return bad("truncated IPv6");
            };
            let (src, dst) = (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
            );
            let len = ip.total_len();
            (src, dst, ip.next_header(), len, ip.payload())
        }
    };
    if src != family.server_ip() || dst != family.client_ip() {
        return bad("IP addresses");
    }
    // The MSS the client offered is its MTU less the IP and TCP headers, and the server's
    // options come out of it too (RFC 9293 §3.7.1): a larger packet would not cross the
    // client's path.
    if ip_len > client.mtu {
        return bad("larger than the client's path MTU");
    }
    if next_header != IpProtocol::Tcp {
        return bad("not TCP");
    }
    let Ok(tcp) = TcpPacket::new_checked(segment) else {
        return bad("truncated TCP");
    };
    if !tcp.verify_checksum(&src, &dst) {
        return bad("TCP checksum");
    }
    if tcp.src_port() != SERVER_PORT {
        return bad("TCP source port");
    }
    Ok(())
}
