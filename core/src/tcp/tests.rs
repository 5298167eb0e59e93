//! Endpoint tests: template segments built with `wire::emit_tcp_frame`, replies parsed with
//! `wire::parse_tcp_frame`, one fixture per state, virtual time.

use core::net::Ipv4Addr;

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::{
    self, EthernetAddress, FrameAddrs, SackBlock, SeqNumber, TcpFlags, TcpHeader, TcpOptions,
    VlanTag,
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
        ip_src: CLIENT_IP,
        ip_dst: SERVER_IP,
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

/// Client side of one connection, kept in step by the tests.
struct Fx {
    ep: Endpoint,
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
    let mut o = TcpOptions {
        mss: Some(1460),
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
        let now = t0();
        let mut ep = Endpoint::new(cfg, SECRET, now);
        ep.handle_frame(now, &frame(&syn(&opts, CLIENT_ISN), &[]))
            .unwrap();
        let out = drain(&mut ep, now);
        assert_eq!(out.len(), 1);
        let sa = &out[0];
        assert!(sa.has(TcpFlags::SYN) && sa.has(TcpFlags::ACK));
        assert_eq!(sa.hdr.ack, SeqNumber(CLIENT_ISN + 1));
        assert_eq!(ep.connection_count(), 0, "a SYN creates no state");
        let server_ws = sa.hdr.options.window_scale.unwrap_or(0);
        let mut fx = Fx {
            ep,
            now,
            h: ConnHandle {
                index: 0,
                generation: 0,
            },
            seq: SeqNumber(CLIENT_ISN + 1),
            ack: sa.hdr.seq + 1u32,
            ts: opts.ts.then_some(101),
            ts_echo: sa.hdr.options.timestamps.map_or(0, |t| t.0),
            window: 65535,
            server_ws,
        };
        fx.send(TcpFlags::ACK, &[]).unwrap();
        let ev = events(&mut fx.ep);
        match ev.first() {
            Some(Event::Established { conn, flow }) => {
                fx.h = *conn;
                assert_eq!(flow.remote.port(), CPORT);
                assert_eq!(flow.local.port(), SPORT);
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
        self.ep.handle_frame(self.now, &frame(&h, payload))
    }

    fn send_hdr(&mut self, h: &TcpHeader, payload: &[u8]) -> Result<(), DropReason> {
        self.ep.handle_frame(self.now, &frame(h, payload))
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

fn closed_count(ev: &[Event]) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::Closed { .. }))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Handshake (stateless front)

#[test]
fn cookie_handshake_with_timestamps_carries_wscale_and_sack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let out = drain(&mut ep, now);
    let sa = &out[0];
    assert_eq!(sa.hdr.options.mss, Some(1460));
    assert_eq!(sa.hdr.options.window_scale, Some(7));
    assert!(sa.hdr.options.sack_permitted);
    assert_eq!(sa.hdr.options.timestamps.map(|t| t.1), Some(100));
    assert_eq!(sa.addrs, client_addrs(None).reversed());
    assert_eq!(ep.stats().cookies_sent, 1);

    let fx = Fx::new();
    let c = fx.ep.conn_for_test(fx.h).unwrap();
    assert_eq!(c.state, conn::State::Established);
    // Peer's shift 7 applies to its window: 65535 << 7.
    assert_eq!(c.debug_snd_wnd(), 65535 << 7);
    assert_eq!(fx.ep.stats().cookies_validated, 1);
}

#[test]
fn cookie_handshake_without_timestamps_negotiates_no_wscale_no_sack() {
    let opts = HsOpts {
        ts: false,
        ws: true,
        sack: true,
    };
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&opts, CLIENT_ISN), &[]))
        .unwrap();
    let sa = &drain(&mut ep, now)[0];
    assert_eq!(sa.hdr.options.window_scale, None);
    assert!(!sa.hdr.options.sack_permitted);
    assert_eq!(sa.hdr.options.timestamps, None);

    let mut fx = Fx::with(small_config(), opts);
    let c = fx.ep.conn_for_test(fx.h).unwrap();
    assert_eq!(c.debug_snd_wnd(), 65535, "unscaled");
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"hello").unwrap();
    fx.advance(Duration::from_millis(40));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.options.timestamps, None);
    assert_eq!(out[0].hdr.ack, fx.seq);
}

#[test]
fn cookie_ack_carrying_data_is_accepted() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let opts = HsOpts {
        ts: false,
        ws: false,
        sack: false,
    };
    ep.handle_frame(now, &frame(&syn(&opts, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    let ack = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        ack: sa.hdr.seq + 1u32,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        ..templ()
    };
    ep.handle_frame(now, &frame(&ack, b"GET / HTTP/1.1\r\n\r\n"))
        .unwrap();
    let ev = events(&mut ep);
    let Event::Established { conn, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(ev[1], Event::Readable(conn));
    let (a, b) = ep.recv_slices(conn);
    assert_eq!([a, b].concat(), b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn bad_cookie_ack_gets_rst_with_seq_seg_ack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let ack = TcpHeader {
        seq: SeqNumber(5000),
        ack: SeqNumber(123_456),
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&ack, &[])),
        Err(DropReason::BadCookie)
    );
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST));
    assert!(!out[0].has(TcpFlags::ACK));
    assert_eq!(out[0].hdr.seq, SeqNumber(123_456));
    assert_eq!(ep.stats().cookies_failed, 1);
    assert_eq!(ep.stats().drop_count(DropReason::BadCookie), 1);
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn rfc9293_listen_drops_segment_without_syn_or_ack_and_rst_gets_nothing() {
    // RFC 9293 §3.10.7.2 (LISTEN), fourth: a segment with neither SYN, ACK nor RST is
    // dropped, not reset (the port has a listener, so this is not CLOSED's §3.10.7.1).
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    for flags in [TcpFlags::FIN, TcpFlags::PSH, TcpFlags::empty()] {
        let h = TcpHeader {
            seq: SeqNumber(77),
            flags,
            ..templ()
        };
        assert_eq!(
            ep.handle_frame(now, &frame(&h, b"abc")),
            Err(DropReason::NoConnection)
        );
        assert!(drain(&mut ep, now).is_empty(), "{flags:?} was answered");
    }
    // Never RST a RST.
    let r = TcpHeader {
        flags: TcpFlags::RST,
        ..templ()
    };
    let _ = ep.handle_frame(now, &frame(&r, &[]));
    assert!(drain(&mut ep, now).is_empty());
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn rfc9293_listen_answers_syn_ack_with_rst_seq_seg_ack() {
    // RFC 9293 §3.10.7.2, second: "If the ACK bit is on ... <SEQ=SEG.ACK><CTL=RST>".
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let h = TcpHeader {
        seq: SeqNumber(77),
        ack: SeqNumber(4242),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&h, &[])),
        Err(DropReason::NoConnection)
    );
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST) && !out[0].has(TcpFlags::ACK));
    assert_eq!(out[0].hdr.seq, SeqNumber(4242));
}

#[test]
fn syn_flood_of_100k_syns_creates_no_state() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let mut answered = 0;
    for i in 0..100_000u32 {
        let mut h = syn(&ALL_OPTS, i.wrapping_mul(7919));
        h.src_port = 1024 + (i % 60000) as u16;
        let _ = ep.handle_frame(now, &frame(&h, &[]));
        if i % 32 == 0 {
            answered += drain(&mut ep, now).len();
        }
    }
    answered += drain(&mut ep, now).len();
    assert_eq!(ep.connection_count(), 0);
    assert_eq!(ep.time_wait_count(), 0);
    assert_eq!(ep.poll_timeout(), None);
    assert_eq!(answered as u64, ep.stats().cookies_sent);
    assert!(answered > 90_000);
}

#[test]
fn stateless_queue_overflow_is_bounded_and_counted() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    for i in 0..100u32 {
        let mut h = syn(&ALL_OPTS, i);
        h.src_port = 2000 + i as u16;
        let _ = ep.handle_frame(now, &frame(&h, &[]));
    }
    assert_eq!(drain(&mut ep, now).len(), 64);
    assert_eq!(ep.stats().stateless_queue_overflows, 36);
}

#[test]
fn table_full_valid_cookie_ack_gets_rst_and_is_counted() {
    let cfg = TcpConfig {
        max_connections: 1,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    // A second client port.
    let mut s = syn(&ALL_OPTS, 9000);
    s.src_port = CPORT + 1;
    fx.ep.handle_frame(fx.now, &frame(&s, &[])).unwrap();
    let sa = fx.out().remove(0);
    let ack = TcpHeader {
        src_port: CPORT + 1,
        seq: SeqNumber(9001),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    assert_eq!(
        fx.ep.handle_frame(fx.now, &frame(&ack, &[])),
        Err(DropReason::TableFull)
    );
    let out = fx.out();
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, sa.hdr.seq + 1u32);
    assert_eq!(fx.ep.stats().table_full, 1);
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn replies_use_the_reversed_addresses_including_vlan() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let tagged = client_addrs(Some(VlanTag { tci: 42 }));
    ep.handle_frame(now, &frame_with(&tagged, &syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    assert_eq!(sa.addrs, tagged.reversed());
    let ack = TcpHeader {
        seq: SeqNumber(CLIENT_ISN + 1),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    ep.handle_frame(now, &frame_with(&tagged, &ack, b"x"))
        .unwrap();
    let Event::Established { conn, .. } = events(&mut ep)[0] else {
        panic!()
    };
    let (a, _) = ep.send_space(conn);
    a[0] = b'y';
    ep.commit_send(conn, 1);
    let out = drain(&mut ep, now);
    assert_eq!(out[0].addrs, tagged.reversed());
    assert_eq!(out[0].payload, b"y");
}

#[test]
fn malformed_frames_and_bad_checksums_are_counted_apart() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    // One flipped byte: the TCP checksum no longer verifies (damage on the wire).
    let mut f = frame(&syn(&ALL_OPTS, 1), &[]);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(ep.handle_frame(now, &f), Err(DropReason::BadChecksum));
    // Three bytes are no frame at all.
    assert_eq!(ep.handle_frame(now, &[1, 2, 3]), Err(DropReason::Malformed));
    assert_eq!(ep.stats().drop_count(DropReason::BadChecksum), 1);
    assert_eq!(ep.stats().drop_count(DropReason::Malformed), 1);
    assert!(
        ep.poll_transmit(now, &mut [0u8; 2048]).is_none(),
        "neither is answered"
    );
}

// ---------------------------------------------------------------------------------------------
// ESTABLISHED: receive

#[test]
fn in_order_data_is_readable_and_ack_is_delayed() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"hello").unwrap();
    assert_eq!(fx.events(), vec![Event::Readable(fx.h)]);
    assert_eq!(fx.readable(), b"hello");
    assert!(fx.out().is_empty(), "ACK delayed");
    assert_eq!(
        fx.ep.poll_timeout(),
        Some(fx.now + Duration::from_millis(40))
    );
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert!(out[0].payload.is_empty());
    fx.ep.consume(fx.h, 5);
    assert!(fx.readable().is_empty());
}

#[test]
fn rfc5681_ack_every_second_full_segment() {
    let mut fx = Fx::new();
    let seg = vec![b'a'; 1448];
    fx.send(TcpFlags::ACK, &seg).unwrap();
    assert!(fx.out().is_empty());
    fx.send(TcpFlags::ACK, &seg).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
}

#[test]
fn piggybacked_ack_on_response_data() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"GET /").unwrap();
    fx.app_send(b"HTTP/1.1 200 OK\r\n\r\n");
    let out = fx.out();
    assert_eq!(out.len(), 1, "one segment: data + ACK");
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(out[0].payload, b"HTTP/1.1 200 OK\r\n\r\n");
}

#[test]
fn out_of_order_data_gets_immediate_ack_with_sack_and_hole_fill_delivers_all() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 5u32;
    fx.send(TcpFlags::ACK, b"world").unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1, "immediate duplicate ACK");
    assert_eq!(out[0].hdr.ack, base);
    assert_eq!(
        out[0].hdr.options.sack(),
        &[SackBlock {
            left: base + 5u32,
            right: base + 10u32
        }]
    );
    assert!(fx.readable().is_empty());
    assert_eq!(fx.ep.stats().out_of_order_segments, 1);
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"hello").unwrap();
    assert_eq!(fx.readable(), b"helloworld");
    let out = fx.out();
    assert_eq!(out[0].hdr.ack, base + 10u32);
    assert_eq!(out[0].hdr.options.sack_len, 0);
}

#[test]
fn overlapping_segments_with_conflicting_bytes_first_copy_wins() {
    let mut fx = Fx::new();
    let base = fx.seq;
    // Out of order first: bytes 4..8 = "EFGH".
    fx.seq = base + 4u32;
    fx.send(TcpFlags::ACK, b"EFGH").unwrap();
    // Then 2..6 with conflicting bytes "xxxx": only 2..4 are new.
    fx.seq = base + 2u32;
    fx.send(TcpFlags::ACK, b"xxzz").unwrap();
    // Then 0..6 again conflicting.
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"ABqqqq").unwrap();
    assert_eq!(fx.readable(), b"ABxxEFGH");
    // In-order data overlapping what was already received: old bytes are kept.
    fx.seq = base + 6u32;
    fx.send(TcpFlags::ACK, b"!!IJ").unwrap();
    assert_eq!(fx.readable(), b"ABxxEFGHIJ");
}

#[test]
fn rfc5681_out_of_order_fin_draws_immediate_duplicate_ack() {
    // RFC 5681 §4.2 / RFC 9293 §3.8.6.3: an out-of-order segment (here a FIN one octet
    // beyond RCV.NXT) is ACKed at once with RCV.NXT; the FIN waits for the hole.
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 1u32;
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(!out[0].has(TcpFlags::FIN));
    assert_eq!(out[0].hdr.ack, base);
    assert!(fx
        .events()
        .iter()
        .all(|e| !matches!(e, Event::PeerClosed(_))));
    // The hole filled: FIN taken, ACKed past it.
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"a").unwrap();
    let out = fx.out();
    assert_eq!(out.last().unwrap().hdr.ack, base + 2u32);
    assert!(fx
        .events()
        .iter()
        .any(|e| matches!(e, Event::PeerClosed(_))));
}

#[test]
fn out_of_order_beyond_bound_is_dropped_and_acked() {
    let cfg = TcpConfig {
        max_ooo_bytes: 1000,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let base = fx.seq;
    fx.seq = base + 10u32;
    assert_eq!(
        fx.send(TcpFlags::ACK, &[1u8; 1200]),
        Err(DropReason::OutOfOrderFull)
    );
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, base);
}

#[test]
fn rfc9293_out_of_window_segment_gets_ack_and_is_dropped() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 10_000_000u32;
    assert_eq!(fx.send(TcpFlags::ACK, b"far"), Err(DropReason::OutOfWindow));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, base);
    // Old duplicate: also ACKed.
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"abc").unwrap();
    fx.seq = base;
    assert_eq!(fx.send(TcpFlags::ACK, b"abc"), Err(DropReason::OutOfWindow));
    let out = fx.out();
    assert_eq!(out.last().unwrap().hdr.ack, base + 3u32);
}

#[test]
fn window_full_advertises_zero_and_answers_zero_window_probe() {
    let cfg = TcpConfig {
        rx_buffer: 4096,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    for _ in 0..4 {
        fx.send(TcpFlags::ACK, &[b'z'; 1024]).unwrap();
    }
    let out = fx.out();
    let last = out.last().unwrap();
    assert_eq!(last.hdr.window, 0, "buffer full: zero window (ws {ws})");
    assert_eq!(fx.readable().len(), 4096);
    // Peer's zero-window probe: one byte, not acceptable, answered with an ACK.
    assert_eq!(fx.send(TcpFlags::ACK, b"p"), Err(DropReason::OutOfWindow));
    fx.seq = fx.seq - 1u32;
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(out[0].hdr.window, 0);
    // The application reads: a window update goes out.
    fx.ep.consume(fx.h, 4096);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(u32::from(out[0].hdr.window) << ws >= 4096 - 127);
}

#[test]
fn rfc9293_right_window_edge_never_moves_left() {
    let cfg = TcpConfig {
        rx_buffer: 8192,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    let mut right = fx.seq + 8192u32;
    for i in 0..20 {
        fx.send(TcpFlags::ACK, &[b'q'; 700]).unwrap_or(());
        if i % 3 == 0 {
            fx.ep.consume(fx.h, 500);
        }
        fx.advance(Duration::from_millis(50));
        for o in fx.out() {
            let edge = o.hdr.ack + (u32::from(o.hdr.window) << ws);
            assert!(edge.diff(right) >= 0, "edge moved left at {i}");
            right = edge;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ESTABLISHED: send

#[test]
fn send_segments_to_mss_minus_options_and_frees_tx_on_ack() {
    let mut fx = Fx::new();
    let data = vec![b'd'; 5000];
    assert_eq!(fx.app_send(&data), 5000);
    let out = fx.out_and_ack();
    let sizes: Vec<usize> = out.iter().map(|o| o.payload.len()).collect();
    // min(1460, 1460) - 12 bytes of timestamps = 1448.
    assert_eq!(sizes, vec![1448, 1448, 1448, 656]);
    assert!(out[0].has(TcpFlags::PSH));
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (a, b) = fx.ep.send_space(fx.h);
    assert_eq!(a.len() + b.len(), 64 * 1024);
    assert_eq!(
        fx.ep.poll_timeout(),
        Some(fx.now + TcpConfig::default().idle_timeout)
    );
}

#[test]
fn rfc6928_initial_window_limits_first_flight() {
    let mut fx = Fx::new();
    fx.app_send(&vec![1u8; 60_000]);
    let out = fx.out();
    let bytes: usize = out.iter().map(|o| o.payload.len()).sum();
    assert_eq!(
        bytes,
        10 * 1448,
        "IW10: 14600 bytes of cwnd, in full segments"
    );
}

#[test]
fn respects_peer_window() {
    let mut fx = Fx::with(
        small_config(),
        HsOpts {
            ts: true,
            ws: false,
            sack: true,
        },
    );
    fx.window = 3000;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(&vec![1u8; 10_000]);
    let out = fx.out();
    let bytes: usize = out.iter().map(|o| o.payload.len()).sum();
    // Two full segments fit; the 104 bytes left of the window would be a silly segment.
    assert_eq!(bytes, 2 * 1448);
}

#[test]
fn rfc9293_sender_sws_avoidance_waits_for_a_useful_window() {
    let mut fx = Fx::with(
        small_config(),
        HsOpts {
            ts: true,
            ws: false,
            sack: true,
        },
    );
    // Peer offered 65535 earlier; now only 100 bytes are free.
    fx.window = 100;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(&vec![1u8; 5000]);
    assert!(fx.out().is_empty(), "no silly-window segment");
    // The override (persist) timer eventually sends what fits.
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 100);
}

#[test]
fn zero_window_persist_probe_with_backoff() {
    let mut fx = Fx::new();
    fx.window = 0;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.app_send(b"response");
    assert!(fx.out().is_empty());
    let t1 = fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"r", "one octet probe");
    let probe_seq = out[0].hdr.seq;
    // Peer answers: still zero window, probe not accepted.
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let t2 = fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.seq, probe_seq);
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let t3 = fx.fire_next();
    assert!(t3 - t2 > t2 - t1, "backoff");
    fx.out();
    assert!(fx.ep.stats().zero_window_probes >= 3);
    // Many more probes: the connection survives while the peer answers.
    for _ in 0..12 {
        fx.send(TcpFlags::ACK, &[]).unwrap();
        fx.fire_next();
        fx.out();
    }
    assert_eq!(fx.ep.connection_count(), 1);
    // Window opens: everything goes.
    fx.window = 65535;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let out = fx.out();
    let all: Vec<u8> = out.iter().flat_map(|o| o.payload.clone()).collect();
    assert_eq!(all, b"response");
}

#[test]
fn rfc6298_rto_retransmits_with_backoff_then_aborts_with_rst() {
    let mut fx = Fx::new();
    fx.app_send(b"lost");
    let first = fx.out();
    assert_eq!(first.len(), 1);
    let mut last = fx.now;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        let at = fx.fire_next();
        gaps.push(at - last);
        last = at;
        let out = fx.out();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, b"lost");
        assert_eq!(out[0].hdr.seq, first[0].hdr.seq);
    }
    assert_eq!(gaps[0], Duration::from_secs(1));
    assert_eq!(gaps[1], Duration::from_secs(2));
    assert_eq!(gaps[2], Duration::from_secs(4));
    assert_eq!(fx.ep.stats().rto_timeouts, 8);
    fx.fire_next();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(closed_count(&fx.events()), 1);
    assert_eq!(fx.ep.stats().rto_aborts, 1);
    fx.assert_all_gone();
}

#[test]
fn rfc6298_rtt_sample_sets_rto() {
    let mut fx = Fx::new();
    fx.app_send(b"x");
    fx.out_and_ack();
    fx.now += Duration::from_millis(100);
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let rto = fx.ep.conn_for_test(fx.h).unwrap().debug_rto();
    // SRTT 100 ms, RTTVAR 50 ms -> 300 ms.
    assert_eq!(rto, Duration::from_millis(300));
}

#[test]
fn rfc6582_fast_retransmit_and_newreno_partial_ack() {
    let mut fx = Fx::new();
    fx.app_send(&vec![7u8; 10 * 1448]);
    let out = fx.out();
    assert_eq!(out.len(), 10);
    let seqs: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    // Segments 0 and 3 lost; the client ACKs seg 0 missing, three dup ACKs.
    fx.ack = seqs[0];
    for _ in 0..3 {
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let out = fx.out();
    assert!(!out.is_empty());
    assert_eq!(out[0].hdr.seq, seqs[0], "fast retransmit of the first hole");
    assert_eq!(fx.ep.stats().fast_retransmits, 1);
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec);
    // Partial ACK up to segment 3: NewReno retransmits segment 3 at once.
    fx.ack = seqs[3];
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out[0].hdr.seq, seqs[3]);
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(rec, "still in recovery after a partial ACK");
    // Full ACK ends recovery.
    fx.ack = seqs[9] + 1448u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (cwnd, ssthresh, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
    assert!(cwnd <= ssthresh);
    assert_eq!(fx.ep.stats().rto_timeouts, 0);
}

// ---------------------------------------------------------------------------------------------
// RFC 5961 and PAWS

#[test]
fn rfc5961_rst_exactly_at_rcv_nxt_resets() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::RST, &[]).unwrap();
    assert_eq!(
        fx.events(),
        vec![Event::Closed {
            conn: fx.h,
            flow: flow()
        }]
    );
    assert!(fx.out().is_empty());
    fx.assert_all_gone();
}

fn flow() -> FlowKey {
    FlowKey::from_inbound(CLIENT_IP, CPORT, SERVER_IP, SPORT)
}

#[test]
fn rfc5961_rst_in_window_not_exact_gets_challenge_ack() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 100u32;
    assert_eq!(fx.send(TcpFlags::RST, &[]), Err(DropReason::RstNotExact));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.ack, base);
    assert_eq!(fx.ep.connection_count(), 1);
    assert_eq!(fx.ep.stats().challenge_acks_sent, 1);
}

#[test]
fn rfc5961_rst_out_of_window_is_dropped_silently() {
    let mut fx = Fx::new();
    fx.seq = fx.seq + 50_000_000u32;
    assert!(fx.send(TcpFlags::RST, &[]).is_err());
    assert!(fx.out().is_empty());
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn rfc5961_syn_in_established_gets_challenge_ack() {
    let mut fx = Fx::new();
    let h = TcpHeader {
        seq: fx.seq,
        flags: TcpFlags::SYN,
        options: TcpOptions {
            timestamps: Some((500, 0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    assert_eq!(fx.send_hdr(&h, &[]), Err(DropReason::SynInSync));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::SYN) && !out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn rfc5961_ack_of_unsent_data_is_acked_and_dropped() {
    let mut fx = Fx::new();
    fx.ack = fx.ack + 1000u32;
    assert_eq!(fx.send(TcpFlags::ACK, b"data"), Err(DropReason::BadAck));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(fx.readable().is_empty());
}

#[test]
fn rfc5961_challenge_acks_are_rate_limited() {
    let cfg = TcpConfig {
        challenge_ack_limit: 2,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let base = fx.seq;
    let mut acks = 0;
    for i in 1..=5u32 {
        fx.seq = base + i;
        let _ = fx.send(TcpFlags::RST, &[]);
        acks += fx.out().len();
    }
    assert_eq!(acks, 2);
    assert_eq!(fx.ep.stats().challenge_acks_suppressed, 3);
    fx.now += Duration::from_secs(1);
    fx.seq = base + 9u32;
    let _ = fx.send(TcpFlags::RST, &[]);
    assert_eq!(fx.out().len(), 1);
}

#[test]
fn rfc7323_paws_drops_old_timestamp_and_acks() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK, b"new").unwrap();
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = Some((5, fx.ts_echo)); // older than TS.Recent
    assert_eq!(fx.send_hdr(&h, b"old"), Err(DropReason::Paws));
    assert_eq!(fx.readable(), b"new");
    let out = fx.out();
    assert_eq!(out.len(), 1);
    // Missing timestamps on a non-RST segment when negotiated: dropped.
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = None;
    assert_eq!(fx.send_hdr(&h, b"nots"), Err(DropReason::Paws));
    assert_eq!(fx.readable(), b"new");
}

#[test]
fn rfc7323_paws_tolerates_a_few_ticks_of_reordering() {
    // A segment sent a few ms before the one that set TS.Recent, overtaken on the way, carries
    // new data: it is taken, not dropped as an old duplicate (and TS.Recent stays).
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK, b"new").unwrap();
    let recent = fx.ts.unwrap();
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = Some((recent - 3, fx.ts_echo));
    assert_eq!(fx.send_hdr(&h, b"late"), Ok(()));
    fx.seq = fx.seq + 4u32;
    assert_eq!(fx.readable(), b"newlate");
    // Beyond the tolerance it is an old duplicate.
    let mut h = fx.hdr(TcpFlags::ACK);
    h.options.timestamps = Some((recent - 17, fx.ts_echo));
    assert_eq!(fx.send_hdr(&h, b"old"), Err(DropReason::Paws));
    assert_eq!(fx.readable(), b"newlate");
}

#[test]
fn rfc7323_timestamps_echo_ts_recent() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK, b"a").unwrap();
    let sent_ts = fx.ts.unwrap();
    fx.app_send(b"b");
    let out = fx.out();
    assert_eq!(out[0].hdr.options.timestamps.unwrap().1, sent_ts);
}

// ---------------------------------------------------------------------------------------------
// Close paths

#[test]
fn passive_close_close_wait_last_ack_closed() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, b"bye").unwrap();
    let ev = fx.events();
    assert!(ev.contains(&Event::PeerClosed(fx.h)));
    let out = fx.out();
    assert_eq!(out.len(), 1, "FIN is ACKed at once");
    assert_eq!(out[0].hdr.ack, fx.seq);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::CloseWait
    );
    fx.app_send(b"last words");
    fx.ep.close(fx.h);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::LastAck
    );
    let out = fx.out_and_ack();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::FIN));
    assert_eq!(out[0].payload, b"last words");
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
}

#[test]
fn last_ack_fin_retransmitted_until_acked() {
    let mut fx = Fx::new();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    fx.ep.close(fx.h);
    let fin = fx.out();
    assert!(fin[0].has(TcpFlags::FIN));
    fx.fire_next();
    let again = fx.out();
    assert!(again[0].has(TcpFlags::FIN));
    assert_eq!(again[0].hdr.seq, fin[0].hdr.seq);
    fx.ack = fin[0].hdr.seq + 1u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.assert_all_gone();
}

#[test]
fn active_close_fin_wait_time_wait_and_expiry_frees_everything() {
    let mut fx = Fx::new();
    fx.app_send(b"response");
    fx.ep.close(fx.h);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::FinWait1
    );
    let out = fx.out_and_ack();
    assert!(out.last().unwrap().has(TcpFlags::FIN));
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::FinWait2
    );
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq, "FIN ACKed");
    let ev = fx.events();
    assert!(ev.contains(&Event::PeerClosed(fx.h)));
    assert_eq!(closed_count(&ev), 1);
    assert_eq!(fx.ep.connection_count(), 0);
    assert_eq!(fx.ep.time_wait_count(), 1);
    // TIME_WAIT re-ACKs a retransmitted FIN.
    fx.seq = fx.seq - 1u32;
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hdr.ack, fx.seq);
    // A pure ACK gets nothing.
    let _ = fx.send(TcpFlags::ACK, &[]);
    assert!(fx.out().is_empty());
    // Expiry.
    fx.advance(Duration::from_secs(61));
    fx.assert_all_gone();
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    let fin = fx.out();
    assert!(fin[0].has(TcpFlags::FIN));
    // Peer's FIN crosses ours: it does not ACK our FIN.
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::Closing
    );
    let out = fx.out();
    assert_eq!(out[0].hdr.ack, fx.seq);
    fx.ack = fin[0].hdr.seq + 1u32;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(fx.ep.connection_count(), 0);
    assert_eq!(fx.ep.time_wait_count(), 1);
    // RFC 9293 (CLOSING): the ACK of our FIN only moves us to TIME_WAIT; the peer's FIN was
    // ACKed above, and an ACK of an ACK is never sent.
    assert!(fx.out().is_empty());
    assert_eq!(closed_count(&fx.events()), 1);
    fx.advance(Duration::from_secs(61));
    fx.assert_all_gone();
}

#[test]
fn fin_wait_1_fin_acking_our_fin_goes_to_time_wait() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    assert_eq!(fx.ep.time_wait_count(), 1);
    assert_eq!(fx.out().len(), 1);
}

#[test]
fn fin_wait_2_timeout_frees_connection() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK, &[]).unwrap();
    fx.advance(Duration::from_secs(61));
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
}

#[test]
fn out_of_order_fin_is_processed_when_the_hole_fills() {
    let mut fx = Fx::new();
    let base = fx.seq;
    fx.seq = base + 3u32;
    fx.send(TcpFlags::ACK | TcpFlags::FIN, b"def").unwrap();
    assert!(!fx.events().contains(&Event::PeerClosed(fx.h)));
    fx.seq = base;
    fx.send(TcpFlags::ACK, b"abc").unwrap();
    assert!(fx.events().contains(&Event::PeerClosed(fx.h)));
    assert_eq!(fx.readable(), b"abcdef");
    let out = fx.out();
    assert_eq!(out.last().unwrap().hdr.ack, base + 7u32);
}

#[test]
fn time_wait_rst_exact_removes_record_and_new_syn_rules() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    // Old SYN (TSval not newer): challenge ACK, no SYN-ACK.
    let mut s = syn(&ALL_OPTS, CLIENT_ISN);
    s.options.timestamps = Some((1, 0));
    assert!(fx.send_hdr(&s, &[]).is_err());
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::SYN));
    // New SYN with a newer timestamp and a higher sequence number: cookie SYN-ACK.
    let new_isn = fx.seq.0 + 100_000;
    let mut s = syn(&ALL_OPTS, new_isn);
    s.options.timestamps = Some((fx.ts.unwrap() + 10, 0));
    fx.send_hdr(&s, &[]).unwrap();
    let sa = fx.out().remove(0);
    assert!(sa.has(TcpFlags::SYN) && sa.has(TcpFlags::ACK));
    // Its cookie ACK takes the flow over.
    let ack = TcpHeader {
        seq: SeqNumber(new_isn + 1),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((fx.ts.unwrap() + 11, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    fx.send_hdr(&ack, &[]).unwrap();
    assert_eq!(fx.ep.time_wait_count(), 0);
    assert_eq!(fx.ep.connection_count(), 1);
    assert!(matches!(
        fx.events().last(),
        Some(Event::Established { .. })
    ));
}

/// RFC 6191 §2, second rule: with timestamps in use, a SYN whose TSval equals TS.Recent is a
/// new incarnation if its sequence number is above RCV.NXT (a client reconnecting within one
/// tick of its timestamp clock); the same TSval with a lower sequence number is not.
#[test]
fn rfc6191_time_wait_syn_with_equal_tsval_and_higher_seq_is_accepted() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    let recent = fx.ts.unwrap();
    // Equal TSval, lower sequence number: challenge ACK.
    let mut s = syn(&ALL_OPTS, fx.seq.0.wrapping_sub(100_000));
    s.options.timestamps = Some((recent, 0));
    assert!(fx.send_hdr(&s, &[]).is_err());
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::SYN));
    // Equal TSval, higher sequence number: a cookie SYN-ACK.
    let mut s = syn(&ALL_OPTS, fx.seq.0.wrapping_add(100_000));
    s.options.timestamps = Some((recent, 0));
    fx.send_hdr(&s, &[]).unwrap();
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::SYN) && out[0].has(TcpFlags::ACK));
}

#[test]
fn time_wait_rst_at_rcv_nxt_closes_record() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    fx.send(TcpFlags::RST, &[]).unwrap();
    fx.assert_all_gone();
}

#[test]
fn time_wait_overflow_drops_oldest_and_counts() {
    let cfg = TcpConfig {
        max_time_wait: 1,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    // A second connection on another port, closed the same way.
    let mut s = syn(&ALL_OPTS, 5000);
    s.src_port = CPORT + 1;
    fx.send_hdr(&s, &[]).unwrap();
    let sa = fx.out().remove(0);
    let mk = |seq: u32, ack: SeqNumber, flags: TcpFlags, tsv: u32, ecr: u32| TcpHeader {
        src_port: CPORT + 1,
        seq: SeqNumber(seq),
        ack,
        flags,
        options: TcpOptions {
            timestamps: Some((tsv, ecr)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    let ecr = sa.hdr.options.timestamps.unwrap().0;
    fx.send_hdr(&mk(5001, sa.hdr.seq + 1u32, TcpFlags::ACK, 101, ecr), &[])
        .unwrap();
    let h2 = match fx.events().last() {
        Some(Event::Established { conn, .. }) => *conn,
        e => panic!("{e:?}"),
    };
    fx.ep.close(h2);
    let fin = fx.out().remove(0);
    fx.send_hdr(
        &mk(
            5001,
            fin.hdr.seq + 1u32,
            TcpFlags::ACK | TcpFlags::FIN,
            102,
            ecr,
        ),
        &[],
    )
    .unwrap();
    assert_eq!(fx.ep.time_wait_count(), 1);
    assert_eq!(fx.ep.stats().time_wait_overflows, 1);
}

#[test]
fn abort_sends_rst_and_closed_once() {
    let mut fx = Fx::new();
    fx.ep.abort(fx.h);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, fx.ack);
    assert_eq!(closed_count(&fx.events()), 1);
    fx.ep.abort(fx.h);
    assert!(fx.out().is_empty());
    assert_eq!(closed_count(&fx.events()), 0);
    fx.assert_all_gone();
}

#[test]
fn stale_conn_handle_is_rejected_after_slot_reuse() {
    let mut fx = Fx::new();
    let old = fx.h;
    fx.ep.abort(old);
    fx.out();
    fx.events();
    // New connection reuses slot 0.
    let mut s = syn(&ALL_OPTS, 7000);
    s.src_port = CPORT + 5;
    fx.send_hdr(&s, &[]).unwrap();
    let sa = fx.out().remove(0);
    let ack = TcpHeader {
        src_port: CPORT + 5,
        seq: SeqNumber(7001),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, sa.hdr.options.timestamps.unwrap().0)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    fx.send_hdr(&ack, b"new data").unwrap();
    let Some(Event::Established { conn: new, .. }) = fx.events().first().copied() else {
        panic!()
    };
    assert_eq!(new.index(), old.index());
    assert_ne!(new, old);
    let (a, b) = fx.ep.recv_slices(old);
    assert!(a.is_empty() && b.is_empty());
    let (a, b) = fx.ep.send_space(old);
    assert!(a.is_empty() && b.is_empty());
    fx.ep.close(old);
    fx.ep.abort(old);
    fx.ep.consume(old, 100);
    assert_eq!(fx.ep.connection_count(), 1);
    let (a, _) = fx.ep.recv_slices(new);
    assert_eq!(a, b"new data");
}

#[test]
fn idle_timeout_aborts() {
    let cfg = TcpConfig {
        idle_timeout: Duration::from_secs(10),
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.advance(Duration::from_secs(5));
    fx.send(TcpFlags::ACK, b"x").unwrap();
    fx.advance(Duration::from_secs(6));
    assert_eq!(fx.ep.connection_count(), 1, "activity pushed the deadline");
    fx.advance(Duration::from_secs(5));
    assert_eq!(fx.ep.connection_count(), 0);
    let out = fx.out();
    assert!(out.iter().any(|o| o.has(TcpFlags::RST)));
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
}

#[test]
fn timer_heap_stays_bounded_under_churn() {
    let mut fx = Fx::new();
    for _ in 0..5000 {
        fx.send(TcpFlags::ACK, b"x").unwrap();
        fx.app_send(b"y");
        fx.out_and_ack();
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    assert!(fx.ep.heap_len() <= 2 * 8 + 16);
}

#[test]
fn garbage_frames_never_panic() {
    let mut fx = Fx::new();
    let mut rng = 0x1234_5678_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..20_000 {
        let r = next();
        let mut h = fx.hdr(TcpFlags::from_bits((r & 0x3f) as u8));
        h.seq = SeqNumber((next() as u32) % 4 + fx.seq.0.wrapping_sub(2));
        if r & 0x100 != 0 {
            h.seq = SeqNumber(next() as u32);
        }
        h.ack = SeqNumber(fx.ack.0.wrapping_add((next() % 5) as u32).wrapping_sub(2));
        if r & 0x200 != 0 {
            h.ack = SeqNumber(next() as u32);
        }
        h.window = next() as u16;
        let len = (next() % 3000) as usize;
        let _ = fx.send_hdr(&h, &vec![0xAB; len]);
        if r & 0x400 != 0 {
            fx.advance(Duration::from_millis(next() % 2000));
        }
        fx.out();
        if r & 0x800 != 0 {
            let n = fx.readable().len();
            fx.ep.consume(fx.h, n);
            fx.app_send(b"pong");
        }
    }
}

#[test]
fn first_flight_data_overtaking_the_cookie_ack_is_dropped_silently_not_reset() {
    let now = t0();
    // Without SYN hints (as under a SYN flood that overwrote them).
    let cfg = TcpConfig {
        syn_hints: 0,
        ..small_config()
    };
    let mut ep = Endpoint::new(cfg, SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    let ecr = sa.hdr.options.timestamps.unwrap().0;
    let mk = |seq: u32, tsv: u32| TcpHeader {
        seq: SeqNumber(seq),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((tsv, ecr)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    // Second and third full segments of the first flight arrive first.
    let s2 = mk(CLIENT_ISN + 1 + 1448, 101);
    assert_eq!(
        ep.handle_frame(now, &frame(&s2, &[b'b'; 1448])),
        Err(DropReason::EarlyData)
    );
    let s3 = mk(CLIENT_ISN + 1 + 2 * 1448, 101);
    assert_eq!(
        ep.handle_frame(now, &frame(&s3, &[b'c'; 100])),
        Err(DropReason::EarlyData)
    );
    assert!(drain(&mut ep, now).is_empty(), "no RST");
    assert_eq!(ep.connection_count(), 0);
    // A forged ACK of the same shape but a wrong cookie still gets its RST.
    let mut bad = mk(CLIENT_ISN + 1 + 1448, 101);
    bad.ack = bad.ack + 1u32;
    assert_eq!(
        ep.handle_frame(now, &frame(&bad, &[b'x'; 1448])),
        Err(DropReason::BadCookie)
    );
    assert!(drain(&mut ep, now)[0].has(TcpFlags::RST));
    // Then the first segment (with the handshake ACK's sequence number) creates the connection.
    let s1 = mk(CLIENT_ISN + 1, 101);
    ep.handle_frame(now, &frame(&s1, &[b'a'; 1448])).unwrap();
    assert_eq!(ep.connection_count(), 1);
}

#[test]
fn rfc9293_syn_ack_to_unknown_flow_gets_rst_with_seq_seg_ack() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    let h = TcpHeader {
        seq: SeqNumber(10),
        ack: SeqNumber(4242),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&h, &[])),
        Err(DropReason::NoConnection)
    );
    let out = drain(&mut ep, now);
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, SeqNumber(4242));
    // SYN+FIN / SYN+RST are refused outright.
    let h = TcpHeader {
        flags: TcpFlags::SYN | TcpFlags::FIN,
        ..templ()
    };
    assert_eq!(
        ep.handle_frame(now, &frame(&h, &[])),
        Err(DropReason::BadFlags)
    );
    assert!(drain(&mut ep, now).is_empty());
}

#[test]
fn writable_event_after_tx_space_was_low() {
    let mut fx = Fx::new();
    let n = fx.app_send(&vec![3u8; 60 * 1024]);
    assert_eq!(n, 60 * 1024);
    assert!(!fx.events().contains(&Event::Writable(fx.h)));
    // ACK everything in flight, repeatedly, until the ring drains.
    for _ in 0..100 {
        fx.out_and_ack();
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    let ev = fx.events();
    assert_eq!(
        ev.iter().filter(|e| **e == Event::Writable(fx.h)).count(),
        1,
        "{ev:?}"
    );
    let (a, b) = fx.ep.send_space(fx.h);
    assert_eq!(a.len() + b.len(), 64 * 1024);
}

#[test]
fn rfc5961_time_wait_rst_in_window_not_exact_gets_challenge_ack() {
    let mut fx = Fx::new();
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    fx.seq = fx.seq + 5u32;
    assert_eq!(fx.send(TcpFlags::RST, &[]), Err(DropReason::RstNotExact));
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(!out[0].has(TcpFlags::RST));
    assert_eq!(fx.ep.time_wait_count(), 1);
}

#[test]
fn send_after_close_is_refused_and_fin_follows_queued_data() {
    let mut fx = Fx::new();
    fx.app_send(b"abc");
    fx.ep.close(fx.h);
    assert_eq!(fx.app_send(b"more"), 0);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"abc");
    assert!(out[0].has(TcpFlags::FIN));
}

#[test]
fn fin_is_retransmitted_after_go_back_n() {
    let mut fx = Fx::new();
    fx.app_send(&vec![1u8; 3000]);
    fx.ep.close(fx.h);
    let out = fx.out();
    assert!(out.last().unwrap().has(TcpFlags::FIN));
    fx.fire_next();
    let mut seen_fin = false;
    for _ in 0..5 {
        for o in fx.out_and_ack() {
            seen_fin |= o.has(TcpFlags::FIN);
        }
        fx.send(TcpFlags::ACK, &[]).unwrap();
    }
    assert!(seen_fin);
    assert_eq!(
        fx.ep.conn_for_test(fx.h).unwrap().state,
        conn::State::FinWait2
    );
}

#[test]
fn rfc6675_sack_recovery_retransmits_each_hole_once() {
    let mut fx = Fx::new();
    fx.app_send(&vec![7u8; 10 * 1448]);
    let out = fx.out();
    assert_eq!(out.len(), 10);
    let s: Vec<SeqNumber> = out.iter().map(|o| o.hdr.seq).collect();
    let end = s[9] + 1448u32;
    fx.ack = s[0];
    let dupack = |fx: &mut Fx, blocks: &[(SeqNumber, SeqNumber)]| {
        let mut h = fx.hdr(TcpFlags::ACK);
        let b: Vec<SackBlock> = blocks
            .iter()
            .map(|&(left, right)| SackBlock { left, right })
            .collect();
        h.options.set_sack(&b);
        fx.send_hdr(&h, &[]).unwrap();
        fx.out()
    };
    assert!(dupack(&mut fx, &[(s[1], s[2])]).is_empty());
    assert!(dupack(&mut fx, &[(s[1], s[3])]).is_empty());
    // Third duplicate ACK: fast retransmit of the first hole only.
    let out = dupack(&mut fx, &[(s[4], s[5]), (s[1], s[3])]);
    assert_eq!(out[0].hdr.seq, s[0]);
    assert_eq!(out[0].payload.len(), 1448);
    assert!(out.iter().skip(1).all(|o| o.hdr.seq.diff(s[9]) > 0));
    // Next duplicate ACK: the second hole (segment 3) goes, not segment 1 or 2.
    let out = dupack(&mut fx, &[(s[4], s[6]), (s[1], s[3])]);
    assert_eq!(out[0].hdr.seq, s[3]);
    // Further duplicate ACKs: no hole left below the SACKed data, nothing retransmitted.
    let out = dupack(&mut fx, &[(s[4], s[8]), (s[1], s[3])]);
    assert!(out.iter().all(|o| o.hdr.seq.diff(s[9]) > 0), "{out:?}");
    // Partial ACK up to segment 3: already retransmitted, not sent again.
    fx.ack = s[3];
    let out = dupack(&mut fx, &[(s[4], s[8])]);
    assert!(out.iter().all(|o| o.hdr.seq != s[3]));
    assert_eq!(fx.ep.stats().retransmits, 2);
    fx.ack = end;
    fx.send(TcpFlags::ACK, &[]).unwrap();
    let (_, _, rec) = fx.ep.conn_for_test(fx.h).unwrap().debug_cwnd();
    assert!(!rec);
}

#[test]
fn rfc9293_zero_receive_window_still_accepts_valid_acks() {
    let cfg = TcpConfig {
        rx_buffer: 4096,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    fx.app_send(b"response bytes");
    let out = fx.out();
    assert_eq!(out.len(), 1);
    for _ in 0..4 {
        fx.send(TcpFlags::ACK, &[b'z'; 1024]).unwrap();
    }
    assert_eq!(fx.out().last().unwrap().hdr.window, 0);
    // The peer sent past our window (and moved its SND.NXT), then ACKs our data: the segment
    // is not acceptable, but its ACK is.
    fx.seq = fx.seq + 500u32;
    fx.ack = out[0].hdr.seq + out[0].payload.len();
    assert_eq!(fx.send(TcpFlags::ACK, &[]), Err(DropReason::OutOfWindow));
    let (a, b) = fx.ep.send_space(fx.h);
    assert_eq!(a.len() + b.len(), 64 * 1024, "tx ring drained by the ACK");
}

#[test]
fn rfc9293_time_wait_without_timestamps_new_syn_needs_higher_sequence() {
    let opts = HsOpts {
        ts: false,
        ws: false,
        sack: false,
    };
    let mut fx = Fx::with(small_config(), opts);
    fx.ep.close(fx.h);
    fx.out_and_ack();
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.out();
    assert_eq!(fx.ep.time_wait_count(), 1);
    let no_ts = HsOpts {
        ts: false,
        ws: false,
        sack: false,
    };
    // Below RCV.NXT: ACK, no SYN-ACK.
    assert!(fx
        .send_hdr(&syn(&no_ts, fx.seq.0.wrapping_sub(10)), &[])
        .is_err());
    let out = fx.out();
    assert!(!out[0].has(TcpFlags::SYN));
    assert_eq!(out[0].hdr.ack, fx.seq);
    // Above: a fresh cookie, and its ACK takes over the flow.
    let isn = fx.seq.0.wrapping_add(1000);
    fx.send_hdr(&syn(&no_ts, isn), &[]).unwrap();
    let sa = fx.out().remove(0);
    assert!(sa.has(TcpFlags::SYN));
    let ack = TcpHeader {
        seq: SeqNumber(isn.wrapping_add(1)),
        ack: sa.hdr.seq + 1u32,
        ..templ()
    };
    fx.send_hdr(&ack, b"GET").unwrap();
    assert_eq!(fx.ep.time_wait_count(), 0);
    assert_eq!(fx.ep.connection_count(), 1);
}

#[test]
fn duplicate_handshake_ack_and_retransmitted_syn_after_establishment_are_harmless() {
    let mut fx = Fx::new();
    // The handshake ACK again (duplicated by the network).
    let h = fx.hdr(TcpFlags::ACK);
    fx.send_hdr(&h, &[]).unwrap();
    assert!(fx.out().is_empty());
    assert_eq!(fx.ep.connection_count(), 1);
    assert_eq!(fx.ep.stats().connections_established, 1);
}

#[test]
fn odd_config_does_not_panic() {
    let cfg = TcpConfig {
        max_connections: 1,
        rx_buffer: 0,
        tx_buffer: 0,
        max_ooo_bytes: 0,
        mss: 0,
        window_scale: 200,
        min_rto: Duration::from_secs(10),
        max_rto: Duration::from_millis(1),
        max_time_wait: 0,
        max_stateless_replies: 0,
        challenge_ack_limit: 0,
        delayed_ack: Duration::ZERO,
        ..TcpConfig::default()
    };
    let now = t0();
    let mut ep = Endpoint::new(cfg.clone(), SECRET, now);
    let _ = ep.handle_frame(now, &frame(&syn(&ALL_OPTS, 1), &[]));
    assert!(drain(&mut ep, now).is_empty(), "no room for replies");
    let cfg = TcpConfig {
        max_stateless_replies: 4,
        ..cfg
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let _ = fx.send(TcpFlags::ACK, b"data");
    fx.app_send(b"x");
    fx.ep.close(fx.h);
    for _ in 0..50 {
        fx.out();
        if fx.ep.poll_timeout().is_none() {
            break;
        }
        fx.fire_next();
    }
    fx.assert_all_gone();
}

#[test]
fn out_of_order_bound_evicts_far_ranges_for_data_nearer_rcv_nxt() {
    let cfg = TcpConfig {
        max_ooo_bytes: 3000,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let base = fx.seq;
    // Far out-of-order data fills the bound.
    fx.seq = base + 10_000u32;
    fx.send(TcpFlags::ACK, &[b'f'; 1400]).unwrap();
    fx.seq = base + 20_000u32;
    fx.send(TcpFlags::ACK, &[b'g'; 1400]).unwrap();
    // Data just above the hole at RCV.NXT displaces the furthest range.
    fx.seq = base + 100u32;
    fx.send(TcpFlags::ACK, &[b'n'; 1400]).unwrap();
    // The hole fills: 100 + 1400 bytes become readable.
    fx.seq = base;
    fx.send(TcpFlags::ACK, &[b'a'; 100]).unwrap();
    let r = fx.readable();
    assert_eq!(r.len(), 1500);
    assert!(r[..100].iter().all(|&b| b == b'a') && r[100..].iter().all(|&b| b == b'n'));
    // The nearer far range survived: filling up to it delivers it too.
    fx.seq = base + 1500u32;
    let mut left = 8_500usize;
    while left > 0 {
        let n = left.min(1400);
        let _ = fx.send(TcpFlags::ACK, &vec![b'm'; n]);
        left -= n;
    }
    assert_eq!(fx.readable().len(), 11_400);
}

#[test]
fn syn_hint_lets_a_segment_overtaking_the_handshake_ack_create_the_connection() {
    let now = t0();
    let mut ep = Endpoint::new(small_config(), SECRET, now);
    ep.handle_frame(now, &frame(&syn(&ALL_OPTS, CLIENT_ISN), &[]))
        .unwrap();
    let sa = drain(&mut ep, now).remove(0);
    let ecr = sa.hdr.options.timestamps.unwrap().0;
    let mk = |seq: u32| TcpHeader {
        seq: SeqNumber(seq),
        ack: sa.hdr.seq + 1u32,
        options: TcpOptions {
            timestamps: Some((101, ecr)),
            ..TcpOptions::default()
        },
        ..templ()
    };
    // A pure ACK (window update) from after a short first flight arrives first: it is not a
    // full-segment multiple, yet the hint recognises it.
    ep.handle_frame(now, &frame(&mk(CLIENT_ISN + 1 + 700), &[]))
        .unwrap();
    assert_eq!(ep.connection_count(), 1);
    let ev = events(&mut ep);
    let Event::Established { conn, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    // Then the data, out of order first.
    let _ = ep.handle_frame(now, &frame(&mk(CLIENT_ISN + 1 + 300), &[b'b'; 400]));
    let out = drain(&mut ep, now);
    assert_eq!(out.last().unwrap().hdr.ack, SeqNumber(CLIENT_ISN + 1));
    ep.handle_frame(now, &frame(&mk(CLIENT_ISN + 1), &[b'a'; 300]))
        .unwrap();
    let (a, b) = ep.recv_slices(conn);
    assert_eq!(a.len() + b.len(), 700);
    // A forged ACK for the same flow with a wrong cookie still gets a RST.
    let now2 = now;
    let mut bad = mk(CLIENT_ISN + 5000);
    bad.src_port = CPORT + 9;
    assert_eq!(
        ep.handle_frame(now2, &frame(&bad, &[])),
        Err(DropReason::BadCookie)
    );
}

#[test]
fn syn_flood_during_traffic_leaves_the_live_connection_working() {
    let mut fx = Fx::new();
    for i in 0..20_000u32 {
        let mut h = syn(&ALL_OPTS, i.wrapping_mul(2_654_435_761));
        h.src_port = 1024 + (i % 50_000) as u16;
        let _ = fx.send_hdr(&h, &[]);
        if i % 1000 == 0 {
            // The live connection keeps exchanging data meanwhile.
            fx.send(TcpFlags::ACK | TcpFlags::PSH, b"req").unwrap();
            fx.app_send(b"resp");
            let out = fx.out_and_ack();
            assert!(out.iter().any(|o| o.payload == b"resp"));
            let n = fx.readable().len();
            fx.ep.consume(fx.h, n);
        }
    }
    assert_eq!(fx.ep.connection_count(), 1);
    assert!(fx.ep.stats().stateless_queue_overflows > 0);
    assert!(fx.ep.stats().cookies_sent > 1000);
}

// ---------------------------------------------------------------------------------------------
// The window after the handshake (SYN-ACK window capped at 16 segments, see `syn_window`)

/// `small_config` with the default receive ring, so the SYN-ACK window (16 segments) is well
/// under half the buffer and the full window has to be announced after the handshake.
fn full_rx_config() -> TcpConfig {
    TcpConfig {
        rx_buffer: TcpConfig::default().rx_buffer,
        ..small_config()
    }
}

/// What the engine does on `Established`: serve the connection, which consumes and commits
/// nothing when the handshake ACK carried no data.
fn engine_serves_empty(fx: &mut Fx) {
    fx.ep.consume(fx.h, 0);
    fx.ep.commit_send(fx.h, 0);
}

#[test]
fn rfc9293_window_update_after_the_handshake_rides_on_the_first_response() {
    let cfg = full_rx_config();
    let syn_wnd = u32::from(cfg.syn_window());
    let rx = cfg.rx_buffer as u32;
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    engine_serves_empty(&mut fx);
    assert!(
        fx.out().is_empty(),
        "no standalone window update after the handshake ACK"
    );
    // The request, then the response: one segment with data, the ACK and the full window.
    fx.send(TcpFlags::ACK | TcpFlags::PSH, b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let n = fx.readable().len();
    fx.ep.consume(fx.h, n);
    fx.app_send(b"HTTP/1.1 200 OK\r\n\r\n");
    let out = fx.out();
    assert_eq!(out.len(), 1, "one segment: {out:?}");
    assert_eq!(out[0].payload, b"HTTP/1.1 200 OK\r\n\r\n");
    assert!(out[0].has(TcpFlags::ACK));
    assert_eq!(out[0].hdr.ack, fx.seq);
    let wnd = u32::from(out[0].hdr.window) << ws;
    assert!(wnd > syn_wnd, "the full window is announced ({wnd})");
    assert!(wnd + (1 << ws) > rx, "the full window is announced ({wnd})");
    // Nothing else is due: the next deadline is the response's retransmission timer.
    assert_eq!(
        fx.ep.poll_timeout(),
        Some(fx.now + TcpConfig::default().initial_rto)
    );
}

#[test]
fn rfc1122_window_update_after_the_handshake_is_sent_within_the_delayed_ack_time() {
    // A client that connects and then says nothing still learns the full window, one
    // delayed-ACK time later (RFC 1122 §4.2.3.2: under 0.5 s).
    let cfg = full_rx_config();
    let syn_wnd = u32::from(cfg.syn_window());
    let delay = cfg.delayed_ack;
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    engine_serves_empty(&mut fx);
    assert!(fx.out().is_empty());
    assert_eq!(fx.fire_next(), t0() + delay);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert!(out[0].payload.is_empty());
    assert!(u32::from(out[0].hdr.window) << ws > syn_wnd);
}

#[test]
fn rfc9293_receiver_sws_client_streaming_past_the_syn_window_is_not_stalled() {
    // A client with more than the SYN-ACK window to send (a large request body) sends what the
    // window it knows allows, in bursts of up to the whole window (the endpoint sees a burst
    // before it transmits, as from one receive batch), then reads the replies. The server
    // application reads everything at once. It must never be blocked: no timer may be needed.
    for burst in [1usize, 2, 3, 16, 64] {
        let cfg = full_rx_config();
        let mut fx = Fx::with(cfg.clone(), ALL_OPTS);
        let ws = fx.server_ws;
        engine_serves_empty(&mut fx);
        let total = 64 * 1448;
        let mut right = fx.seq + u32::from(cfg.syn_window());
        let (mut sent, mut received) = (0usize, 0usize);
        while sent < total {
            let mut n = 0;
            while n < burst && sent < total {
                let len = (total - sent).min(1448);
                if (fx.seq + len).diff(right) > 0 {
                    break;
                }
                fx.send(TcpFlags::ACK, &[b'u'; 1448][..len]).unwrap();
                sent += len;
                n += 1;
            }
            assert!(n > 0, "burst {burst}: client blocked after {sent} bytes");
            let readable = fx.readable().len();
            received += readable;
            fx.ep.consume(fx.h, readable);
            for o in fx.out() {
                let edge = o.hdr.ack + (u32::from(o.hdr.window) << ws);
                if edge.diff(right) > 0 {
                    right = edge;
                }
            }
        }
        assert_eq!(received, total);
        assert_eq!(fx.now, t0(), "no timer was needed");
    }
}

#[test]
fn rfc9293_window_update_after_consume_is_immediate_when_the_window_is_nearly_closed() {
    // Under two full segments of window left, the peer may be blocked: the update goes at once.
    let cfg = TcpConfig {
        rx_buffer: 8 * 1448,
        ..small_config()
    };
    let mut fx = Fx::with(cfg, ALL_OPTS);
    let ws = fx.server_ws;
    for _ in 0..7 {
        fx.send(TcpFlags::ACK, &[b'w'; 1448]).unwrap();
    }
    let out = fx.out();
    let last = out.last().unwrap();
    let left = u32::from(last.hdr.window) << ws;
    assert!(left < 2 * 1448, "{left}");
    fx.ep.consume(fx.h, 7 * 1448);
    let out = fx.out();
    assert_eq!(out.len(), 1, "immediate window update");
    assert!(out[0].payload.is_empty());
    assert!(u32::from(out[0].hdr.window) << ws >= 7 * 1448);
}

/// Frames per connection of a connection-per-request client (handshake, one `Connection:
/// close` request, the server's response and FIN, the client's FIN), through the whole engine.
#[test]
fn rfc9293_connection_per_request_costs_seven_frames() {
    use crate::app::{App, AppConfig};
    use crate::engine::{Engine, EngineConfig};
    use crate::testkit::ScriptedClient;

    let mut now = t0();
    let config = EngineConfig {
        tcp: small_config(),
        ..EngineConfig::default()
    };
    let app = App::new(&AppConfig::default()).unwrap();
    let mut engine = Engine::new(config, app, SECRET, now);
    let (mut buf, mut out) = (Vec::new(), vec![0u8; 2048]);
    let mut pump = |engine: &mut Engine, client: &mut ScriptedClient, now: Instant| {
        let mut frames = Vec::new();
        while let Some(n) = engine.poll_transmit(now, &mut out) {
            client.receive(&out[..n], None);
            let f = wire::parse_tcp_frame(&out[..n]).unwrap();
            frames.push((f.tcp.flags, f.tcp.window, f.payload.len()));
        }
        while engine.poll_flow_event().is_some() {}
        frames
    };
    for i in 0..4u32 {
        let mut client = ScriptedClient::new(5000 + i as u16, 80, 1 << 20 | i);
        let n = client.syn(&mut buf, true);
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert_eq!(s.len(), 1, "SYN-ACK");
        let mut frames = 1 + s.len();
        let n = client.send(&mut buf, &[]);
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert!(s.is_empty(), "nothing answers the handshake ACK: {s:?}");
        frames += 1 + s.len();
        let n = client.send(
            &mut buf,
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert_eq!(s.len(), 1, "response, ACK and FIN in one segment: {s:?}");
        assert!(s[0].0.contains(TcpFlags::FIN) && s[0].2 > 0);
        frames += 1 + s.len();
        assert!(client.server_fin);
        let n = client.fin(&mut buf);
        engine.handle_frame(now, &buf[..n]).unwrap();
        let s = pump(&mut engine, &mut client, now);
        assert_eq!(s.len(), 1, "the last ACK");
        frames += 1 + s.len();
        assert_eq!(frames, 7, "frames per connection, both directions");
        assert_eq!(engine.connection_count(), 0);
        now += Duration::from_millis(1);
    }
}

#[test]
fn rfc9293_stale_ack_after_passive_close_gets_rst_not_a_new_connection() {
    // A duplicated or reordered pure ACK of a connection that has closed (LAST_ACK -> CLOSED,
    // so no TIME_WAIT record) reaches the stateless front while the cookie is still valid. Its
    // sequence number is not ISN + 1, and the SYN hint must no longer vouch for it: LISTEN
    // answers an ACK with <SEQ=SEG.ACK><CTL=RST> (§3.10.7.2), no connection is created.
    let mut fx = Fx::new();
    let first_ack = fx.ack;
    fx.send(TcpFlags::ACK | TcpFlags::PSH, &[b'r'; 300])
        .unwrap();
    let stale = fx.hdr(TcpFlags::ACK);
    let mut stale = TcpHeader {
        ack: first_ack,
        ..stale
    };
    fx.send(TcpFlags::ACK | TcpFlags::FIN, &[]).unwrap();
    fx.app_send(b"response");
    fx.ep.close(fx.h);
    let out = fx.out_and_ack();
    assert!(out.iter().any(|o| o.has(TcpFlags::FIN)));
    fx.send(TcpFlags::ACK, &[]).unwrap();
    assert_eq!(closed_count(&fx.events()), 1);
    fx.assert_all_gone();
    // The stale ACK (and the same with data, as a retransmission would be).
    fx.advance(Duration::from_millis(1));
    assert_eq!(fx.send_hdr(&stale, &[]), Err(DropReason::BadCookie));
    stale.options.timestamps = stale.options.timestamps.map(|(v, e)| (v + 1, e));
    let _ = fx.send_hdr(&stale, &[b'r'; 100]);
    assert_eq!(fx.ep.connection_count(), 0, "no phantom connection");
    assert!(fx.events().is_empty());
    let out = fx.out();
    assert!(out[0].has(TcpFlags::RST));
    assert_eq!(out[0].hdr.seq, first_ack);
    fx.assert_all_gone();
}

#[test]
fn drop_reasons_are_listed_in_index_order_with_distinct_names() {
    // Counters are exported by name from `DropReason::ALL`; a reason missing there would
    // be counted but never shown.
    let mut names = std::collections::HashSet::new();
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(names.insert(r.name()), "{} twice", r.name());
    }
    assert_eq!(names.len(), DropReason::COUNT);
}

#[test]
fn stats_add_sums_every_counter() {
    let mut one = TcpStats {
        retransmits: 2,
        ..TcpStats::default()
    };
    one.count_drop(DropReason::Malformed);
    let mut total = TcpStats::default();
    total.add(&one);
    total.add(&one);
    assert_eq!(total.retransmits, 4);
    assert_eq!(total.drop_count(DropReason::Malformed), 2);
}
