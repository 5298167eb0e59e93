//! Endpoint tests: template segments built with `wire::emit_tcp_frame`, replies parsed with
//! `wire::parse_tcp_frame`, one fixture per state, virtual time. The fixture and helpers live
//! here; the tests, one file per concern, below.

mod close;
mod dsack;
mod ecn;
mod handshake;
mod hystart;
mod ipv6;
mod pmtu;
mod rack_tlp;
mod receive;
mod recovery;
mod rfc5961_paws;
mod send;
mod syn_cache;
mod table;
mod time_wait;
mod window_update;

use core::net::Ipv4Addr;

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::{
    self, EthernetAddress, FrameAddrs, IpPair, SackBlock, SeqNumber, TcpFlags, TcpHeader,
    TcpOptions, VlanTag,
};

const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CPORT: u16 = 40000;
const SPORT: u16 = 80;
const CLIENT_ISN: u32 = 1000;
const SECRET: [u8; 32] = [7; 32];

fn t0() -> Instant {
    Instant::from_secs(10_000)
}

fn client_addrs(port_vlan: Option<VlanTag>) -> FrameAddrs {
    FrameAddrs {
        eth_src: CLIENT_MAC,
        eth_dst: SERVER_MAC,
        vlan: port_vlan,
        ip: IpPair::V4 {
            src: CLIENT_IP,
            dst: SERVER_IP,
        },
    }
}

/// The template segment: client -> server, ACK, full window, no options.
fn templ() -> TcpHeader {
    TcpHeader {
        src_port: CPORT,
        dst_port: SPORT,
        seq: SeqNumber(0),
        ack: SeqNumber(0),
        flags: TcpFlags::ACK,
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
    }
}

fn frame_with(addrs: &FrameAddrs, h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = wire::emit_tcp_frame(&mut buf, addrs, 1, 64, h, [payload, &[]]).unwrap();
    buf.truncate(n);
    buf
}

fn frame(h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    frame_with(&client_addrs(None), h, payload)
}

#[derive(Debug, Clone)]
struct Out {
    addrs: FrameAddrs,
    hdr: TcpHeader,
    payload: Vec<u8>,
    /// The IP header's ECN field.
    ecn: wire::Ecn,
}

impl Out {
    fn has(&self, f: TcpFlags) -> bool {
        self.hdr.flags.contains(f)
    }
}

fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Out> {
    let mut v = Vec::new();
    let mut buf = vec![0u8; 2048];
    for _ in 0..10_000 {
        let Some(n) = ep.poll_transmit(now, &mut buf) else {
            break;
        };
        let f = wire::parse_tcp_frame(&buf[..n]).expect("we emit valid frames");
        v.push(Out {
            addrs: f.addrs,
            hdr: f.tcp,
            payload: f.payload.to_vec(),
            ecn: f.ecn,
        });
    }
    v
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn small_config() -> TcpConfig {
    TcpConfig {
        max_connections: 8,
        rx_buffer: 64 * 1024,
        tx_buffer: 64 * 1024,
        max_ooo_bytes: 32 * 1024,
        max_time_wait: 8,
        max_stateless_replies: 64,
        ..TcpConfig::default()
    }
}

/// `small_config` without a SYN cache: every SYN gets a cookie alone, every handshake is a
/// cookie ACK (the stateless front's own rules).
fn cookie_only_config() -> TcpConfig {
    TcpConfig {
        syn_cache: 0,
        ..small_config()
    }
}

/// Client side of one connection, kept in step by the tests.
struct Fx {
    ep: Endpoint,
    /// The client's addressing (IPv4 unless the test chose IPv6).
    addrs: FrameAddrs,
    now: Instant,
    h: ConnHandle,
    /// Client's next sequence number.
    seq: SeqNumber,
    /// What the client acknowledges (server's next sequence number).
    ack: SeqNumber,
    /// Client TSval clock (None: no timestamps).
    ts: Option<u32>,
    /// Last server TSval seen.
    ts_echo: u32,
    /// Window the client advertises (raw field; the client's shift is 7 when WS is on).
    window: u16,
    /// Server's advertised shift.
    server_ws: u8,
}

struct HsOpts {
    ts: bool,
    ws: bool,
    sack: bool,
}

const ALL_OPTS: HsOpts = HsOpts {
    ts: true,
    ws: true,
    sack: true,
};

fn syn(opts: &HsOpts, isn: u32) -> TcpHeader {
    syn_with_mss(opts, isn, 1460)
}

fn syn_with_mss(opts: &HsOpts, isn: u32, mss: u16) -> TcpHeader {
    let mut o = TcpOptions {
        mss: Some(mss),
        ..TcpOptions::default()
    };
    if opts.ws {
        o.window_scale = Some(7);
    }
    o.sack_permitted = opts.sack;
    if opts.ts {
        o.timestamps = Some((100, 0));
    }
    TcpHeader {
        seq: SeqNumber(isn),
        flags: TcpFlags::SYN,
        options: o,
        ..templ()
    }
}

impl Fx {
    fn with(cfg: TcpConfig, opts: HsOpts) -> Fx {
        Fx::with_mss(cfg, opts, 1460)
    }

    /// The handshake with `opts` and the client MSS `mss`.
    fn with_mss(cfg: TcpConfig, opts: HsOpts, mss: u16) -> Fx {
        Fx::with_syn(cfg, &syn_with_mss(&opts, CLIENT_ISN, mss), opts.ts)
    }

    /// The handshake that starts with `syn` (`ts`: the client sends timestamps).
    fn with_syn(cfg: TcpConfig, syn: &TcpHeader, ts: bool) -> Fx {
        Fx::with_syn_from(cfg, client_addrs(None), syn, ts)
    }

    /// [`Fx::with_syn`] from a client at `addrs`.
    fn with_syn_from(cfg: TcpConfig, addrs: FrameAddrs, syn: &TcpHeader, ts: bool) -> Fx {
        let now = t0();
        let mut ep = Endpoint::new(cfg, SECRET, now);
        ep.handle_frame(now, &frame_with(&addrs, syn, &[])).unwrap();
        let out = drain(&mut ep, now);
        assert_eq!(out.len(), 1);
        let sa = &out[0];
        assert!(sa.has(TcpFlags::SYN) && sa.has(TcpFlags::ACK));
        assert_eq!(sa.hdr.ack, SeqNumber(CLIENT_ISN + 1));
        assert_eq!(ep.connection_count(), 0, "a SYN creates no state");
        let server_ws = sa.hdr.options.window_scale.unwrap_or(0);
        let mut fx = Fx {
            ep,
            addrs,
            now,
            h: ConnHandle {
                index: 0,
                generation: 0,
            },
            seq: SeqNumber(CLIENT_ISN + 1),
            ack: sa.hdr.seq + 1u32,
            ts: ts.then_some(101),
            ts_echo: sa.hdr.options.timestamps.map_or(0, |t| t.0),
            window: 65535,
            server_ws,
        };
        fx.send(TcpFlags::ACK, &[]).unwrap();
        let ev = events(&mut fx.ep);
        match ev.first() {
            Some(Event::Established { conn, flow }) => {
                fx.h = *conn;
                assert_eq!(flow.remote_port(), CPORT);
                assert_eq!(flow.local_port(), SPORT);
            }
            other => panic!("expected Established, got {other:?}"),
        }
        assert_eq!(fx.ep.connection_count(), 1);
        fx
    }

    fn new() -> Fx {
        Fx::with(small_config(), ALL_OPTS)
    }

    fn hdr(&mut self, flags: TcpFlags) -> TcpHeader {
        let mut options = TcpOptions::default();
        if let Some(ts) = self.ts.as_mut() {
            *ts += 1;
            options.timestamps = Some((*ts, self.ts_echo));
        }
        TcpHeader {
            seq: self.seq,
            ack: self.ack,
            flags,
            window: self.window,
            options,
            ..templ()
        }
    }

    /// Sends a segment from the client's current state and advances its sequence number.
    fn send(&mut self, flags: TcpFlags, payload: &[u8]) -> Result<(), DropReason> {
        let h = self.hdr(flags);
        self.seq = self.seq + payload.len() + usize::from(flags.contains(TcpFlags::FIN));
        self.ep
            .handle_frame(self.now, &frame_with(&self.addrs, &h, payload))
    }

    fn send_hdr(&mut self, h: &TcpHeader, payload: &[u8]) -> Result<(), DropReason> {
        self.ep
            .handle_frame(self.now, &frame_with(&self.addrs, h, payload))
    }

    /// An ACK at `self.ack` (a duplicate, unless the test moved it) carrying the SACK
    /// `blocks`.
    fn send_sack(&mut self, blocks: &[(SeqNumber, SeqNumber)]) {
        let mut h = self.hdr(TcpFlags::ACK);
        let b: Vec<SackBlock> = blocks
            .iter()
            .map(|&(left, right)| SackBlock { left, right })
            .collect();
        h.options.set_sack(&b);
        self.send_hdr(&h, &[]).unwrap();
    }

    fn out(&mut self) -> Vec<Out> {
        let out = drain(&mut self.ep, self.now);
        for o in out.iter().filter(|o| o.hdr.dst_port == CPORT) {
            if let Some((v, _)) = o.hdr.options.timestamps {
                self.ts_echo = v;
            }
        }
        out
    }

    /// Drains output and ACKs all of it from the client.
    fn out_and_ack(&mut self) -> Vec<Out> {
        let out = self.out();
        for o in out.iter().filter(|o| o.hdr.dst_port == CPORT) {
            let end = o.hdr.seq + o.payload.len() + usize::from(o.has(TcpFlags::FIN));
            if end.diff(self.ack) > 0 {
                self.ack = end;
            }
        }
        out
    }

    fn events(&mut self) -> Vec<Event> {
        events(&mut self.ep)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.ep.handle_timeout(self.now);
    }

    /// Jumps to the endpoint's next deadline and fires it.
    fn fire_next(&mut self) -> Instant {
        let at = self.ep.poll_timeout().expect("a timer");
        assert!(at >= self.now);
        self.now = at;
        self.ep.handle_timeout(at);
        at
    }

    fn app_send(&mut self, data: &[u8]) -> usize {
        let (a, b) = self.ep.send_space(self.h);
        let n1 = data.len().min(a.len());
        a[..n1].copy_from_slice(&data[..n1]);
        let rest = &data[n1..];
        let n2 = rest.len().min(b.len());
        b[..n2].copy_from_slice(&rest[..n2]);
        self.ep.commit_send(self.h, n1 + n2);
        n1 + n2
    }

    /// Sends the one-byte segments that spend the connection's quick ACKs (`quick_ack.rs`),
    /// each ACKed at once, and consumes them: what follows meets the delayed ACK.
    fn past_quick_acks(&mut self) {
        for n in 0..crate::tcp::quick_ack::MAX_QUICK_ACKS {
            self.send(TcpFlags::ACK, b"q").unwrap();
            assert_eq!(self.out().len(), 1, "quick ACK {n} at once");
        }
        self.ep
            .consume(self.h, usize::from(crate::tcp::quick_ack::MAX_QUICK_ACKS));
        self.events();
    }

    fn readable(&self) -> Vec<u8> {
        let (a, b) = self.ep.recv_slices(self.h);
        [a, b].concat()
    }

    fn assert_all_gone(&self) {
        assert_eq!(self.ep.connection_count(), 0);
        assert_eq!(self.ep.time_wait_count(), 0);
        assert_eq!(self.ep.poll_timeout(), None, "no timer remains");
    }
}

/// A duplicate ACK carrying `blocks` (SACK), and what the connection sends in answer.
fn sack_ack(fx: &mut Fx, blocks: &[(SeqNumber, SeqNumber)]) -> Vec<Out> {
    fx.send_sack(blocks);
    fx.out()
}

fn closed_count(ev: &[Event]) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::Closed { .. }))
        .count()
}

fn flow() -> FlowKey {
    FlowKey::from_inbound_v4(CLIENT_IP, CPORT, SERVER_IP, SPORT)
}
