//! End-to-end: a smoltcp client against our `Endpoint` across a seeded lossy, duplicating,
//! reordering link, in virtual time. The server echoes every byte (XOR 0x5A); the client
//! checks the echoed stream byte for byte, then closes; both sides must end cleanly.

use std::collections::VecDeque;

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress as SEth, HardwareAddress, IpAddress, IpCidr};

use super::*;
use crate::time::Instant;
use crate::wire;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

struct SimDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct RxT(Vec<u8>);
struct TxT<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxT {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxT<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = RxT;
    type TxToken<'a> = TxT<'a>;

    fn receive(
        &mut self,
        _t: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let f = self.rx.pop_front()?;
        Some((RxT(f), TxT(&mut self.tx)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxT(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

thread_local! {
    /// Virtual milliseconds for the client's timestamp generator (a plain `fn() -> u32`).
    static VCLOCK_MS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn client_tsval() -> u32 {
    VCLOCK_MS.with(|c| c.get())
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, permille: u64) -> bool {
        self.next() % 1000 < permille
    }
}

/// A one-way link: loss, duplication and delay jitter (which reorders).
struct Link {
    q: Vec<(u64, Vec<u8>)>,
    loss: u64,
    dup: u64,
    /// The delay is 2 ms plus up to this much.
    jitter_us: u64,
}

impl Link {
    fn send(&mut self, rng: &mut Rng, now_us: u64, f: Vec<u8>) {
        if rng.chance(self.loss) {
            return;
        }
        let delay = 2_000 + rng.next() % self.jitter_us.max(1);
        if rng.chance(self.dup) {
            self.q.push((now_us + delay + 1_000, f.clone()));
        }
        self.q.push((now_us + delay, f));
    }
    fn due(&mut self, now_us: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.q.len() {
            if self.q[i].0 <= now_us {
                out.push(self.q.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        out
    }
    fn next_at(&self) -> Option<u64> {
        self.q.iter().map(|(t, _)| *t).min()
    }
}

fn trace(dir: &str, now_us: u64, f: &[u8]) {
    if std::env::var("SIM_TRACE").is_err() {
        return;
    }
    if let Ok(p) = crate::wire::parse_tcp_frame(f) {
        eprintln!(
            "{:>8}us {dir} {}>{} seq={} ack={} {:?} win={} len={} ts={:?} sack={:?}",
            now_us,
            p.tcp.src_port,
            p.tcp.dst_port,
            p.tcp.seq,
            p.tcp.ack,
            p.tcp.flags,
            p.tcp.window,
            p.payload.len(),
            p.tcp.options.timestamps,
            p.tcp.options.sack()
        );
    }
}

fn arp_reply(req: &[u8]) -> Option<Vec<u8>> {
    if req.len() < 42 || req[12..14] != [0x08, 0x06] || req[20..22] != [0, 1] {
        return None;
    }
    let mut r = Vec::with_capacity(42);
    r.extend_from_slice(&req[6..12]);
    r.extend_from_slice(&SERVER_MAC);
    r.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    r.extend_from_slice(&SERVER_MAC);
    r.extend_from_slice(&req[38..42]); // the address asked for
    r.extend_from_slice(&req[22..28]);
    r.extend_from_slice(&req[28..32]);
    Some(r)
}

struct Outcome {
    echoed_ok: bool,
    server_conns: usize,
    client_state: tcp::State,
    closed_events: usize,
    established_events: usize,
    stats: TcpStats,
    /// Virtual time at the end, from the first SYN.
    elapsed_us: u64,
}

fn run(seed: u64, loss: u64, dup: u64, total: usize, timestamps: bool) -> Outcome {
    run_with(seed, loss, dup, 6_000, total, timestamps, &mut |_| false)
}

/// `run` with the link's jitter and `drop_s2c` deciding, frame by frame, which of the server's
/// frames the link loses (before its own random loss).
fn run_with(
    seed: u64,
    loss: u64,
    dup: u64,
    jitter_us: u64,
    total: usize,
    timestamps: bool,
    drop_s2c: &mut dyn FnMut(&[u8]) -> bool,
) -> Outcome {
    let mut rng = Rng(seed | 1);
    let start_us: u64 = 1_000_000;
    let mut now_us = start_us;
    let sm = |us: u64| smoltcp::time::Instant::from_micros(us as i64);

    let mut dev = SimDevice {
        rx: VecDeque::new(),
        tx: Vec::new(),
    };
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(SEth(CLIENT_MAC))),
        &mut dev,
        sm(now_us),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap();
    });
    let mut sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 32 * 1024]),
        tcp::SocketBuffer::new(vec![0; 32 * 1024]),
    );
    sock.set_nagle_enabled(false);
    if timestamps {
        sock.set_tsval_generator(Some(client_tsval));
    }
    let mut sockets = SocketSet::new(vec![]);
    let sh = sockets.add(sock);
    sockets
        .get_mut::<tcp::Socket>(sh)
        .connect(iface.context(), (IpAddress::v4(10, 0, 0, 1), 80), 40000)
        .unwrap();

    let cfg = TcpConfig {
        max_connections: 4,
        rx_buffer: 16 * 1024,
        tx_buffer: 16 * 1024,
        max_time_wait: 4,
        ..TcpConfig::default()
    };
    let mut ep = Endpoint::new(cfg, [9; 32], Instant::from_micros(now_us));
    let mut c2s = Link {
        q: Vec::new(),
        loss,
        dup,
        jitter_us,
    };
    let mut s2c = Link {
        q: Vec::new(),
        loss,
        dup,
        jitter_us,
    };

    let stream: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
    let mut sent = 0usize;
    let mut got = Vec::with_capacity(total);
    let mut client_closed = false;
    let mut server_conn: Option<ConnHandle> = None;
    let mut server_peer_closed = false;
    let mut server_closing = false;
    let mut closed_events = 0;
    let mut established_events = 0;
    let mut buf = vec![0u8; 2048];

    for _ in 0..2_000_000 {
        VCLOCK_MS.with(|c| c.set((now_us / 1000) as u32));
        // Client.
        iface.poll(sm(now_us), &mut dev, &mut sockets);
        {
            let s = sockets.get_mut::<tcp::Socket>(sh);
            if s.can_send() && sent < total {
                sent += s.send_slice(&stream[sent..]).unwrap_or(0);
            }
            while s.can_recv() {
                let mut tmp = [0u8; 4096];
                let n = s.recv_slice(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&tmp[..n]);
            }
            if got.len() >= total && !client_closed {
                s.close();
                client_closed = true;
            }
        }
        iface.poll(sm(now_us), &mut dev, &mut sockets);
        for f in dev.tx.drain(..) {
            if let Some(r) = arp_reply(&f) {
                dev.rx.push_back(r);
            } else {
                trace("C>S", now_us, &f);
                c2s.send(&mut rng, now_us, f);
            }
        }

        // Server.
        let t = Instant::from_micros(now_us);
        for f in c2s.due(now_us) {
            let _ = ep.handle_frame(t, &f);
        }
        ep.handle_timeout(t);
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::Established { conn, .. } => {
                    established_events += 1;
                    server_conn = Some(conn);
                }
                Event::PeerClosed(_) => server_peer_closed = true,
                Event::Closed { .. } => {
                    closed_events += 1;
                    server_conn = None;
                }
                _ => {}
            }
        }
        if let Some(h) = server_conn {
            // Echo with backpressure: consume only what fits in the send space.
            let (a, b) = ep.recv_slices(h);
            let input: Vec<u8> = [a, b].concat();
            let (x, y) = ep.send_space(h);
            let mut n = 0;
            for (dst, src) in x.iter_mut().chain(y.iter_mut()).zip(input.iter()) {
                *dst = src ^ 0x5A;
                n += 1;
            }
            ep.commit_send(h, n);
            ep.consume(h, n);
            if server_peer_closed && input.len() == n && !server_closing {
                ep.close(h);
                server_closing = true;
            }
        }
        while let Some(n) = ep.poll_transmit(t, &mut buf) {
            trace("S>C", now_us, &buf[..n]);
            if !drop_s2c(&buf[..n]) {
                s2c.send(&mut rng, now_us, buf[..n].to_vec());
            }
        }
        for f in s2c.due(now_us) {
            dev.rx.push_back(f);
        }

        let client_state = sockets.get::<tcp::Socket>(sh).state();
        if client_closed
            && ep.connection_count() == 0
            && matches!(client_state, tcp::State::TimeWait | tcp::State::Closed)
            && established_events > 0
        {
            break;
        }

        // Advance virtual time to the next thing that can happen.
        let mut next = now_us + 50_000;
        if let Some(d) = iface.poll_delay(sm(now_us), &sockets) {
            next = next.min(now_us + d.total_micros().max(1));
        }
        if let Some(at) = ep.poll_timeout() {
            next = next.min(at.as_micros().max(now_us + 1));
        }
        for l in [&c2s, &s2c] {
            if let Some(at) = l.next_at() {
                next = next.min(at.max(now_us + 1));
            }
        }
        if !dev.rx.is_empty() {
            next = now_us;
        }
        now_us = next.max(now_us);
        if now_us > 3_600_000_000 {
            break;
        }
    }
    let expect: Vec<u8> = stream.iter().map(|b| b ^ 0x5A).collect();
    if std::env::var("SIM_DEBUG").is_ok() {
        eprintln!(
            "seed {seed}: sent {sent} got {} est {established_events} closed {closed_events} client {:?} t={}ms stats {:?}",
            got.len(),
            sockets.get::<tcp::Socket>(sh).state(),
            now_us / 1000,
            ep.stats()
        );
    }
    Outcome {
        echoed_ok: got == expect,
        server_conns: ep.connection_count(),
        client_state: sockets.get::<tcp::Socket>(sh).state(),
        closed_events,
        established_events,
        stats: ep.stats().clone(),
        elapsed_us: now_us - start_us,
    }
}

#[test]
fn sim_echo_over_a_clean_link() {
    let o = run(1, 0, 0, 200_000, false);
    assert!(o.echoed_ok);
    assert_eq!(o.server_conns, 0);
    assert_eq!(o.established_events, 1);
    assert_eq!(o.closed_events, 1);
    assert!(matches!(
        o.client_state,
        tcp::State::TimeWait | tcp::State::Closed
    ));
}

#[test]
fn sim_echo_with_loss_duplication_and_reordering() {
    for seed in 1..=12u64 {
        let o = run(seed * 7919, 50, 20, 100_000, seed % 2 == 0);
        assert!(o.echoed_ok, "seed {seed}: stream mismatch");
        assert_eq!(o.server_conns, 0, "seed {seed}");
        assert_eq!(o.closed_events, o.established_events, "seed {seed}");
    }
}

#[test]
fn sim_echo_with_heavy_loss() {
    for seed in 100..104u64 {
        let o = run(seed, 200, 50, 30_000, seed % 2 == 1);
        assert!(o.echoed_ok, "seed {seed}: stream mismatch");
        assert_eq!(o.server_conns, 0, "seed {seed}");
    }
}

#[test]
fn sim_echo_with_timestamps_wscale_and_sack_negotiated() {
    for seed in 1..=6u64 {
        let o = run(seed * 31, 30, 10, 150_000, true);
        assert!(o.echoed_ok, "seed {seed}: stream mismatch");
        assert_eq!(o.server_conns, 0, "seed {seed}");
        assert_eq!(o.closed_events, o.established_events, "seed {seed}");
    }
}

/// One client socket's progress in `run_many`.
struct Client {
    handle: smoltcp::iface::SocketHandle,
    round: u16,
    sent: usize,
    got: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct ServerSide {
    peer_closed: bool,
    closing: bool,
}

fn new_client_socket(timestamps: bool) -> tcp::Socket<'static> {
    let mut sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
    );
    sock.set_nagle_enabled(false);
    if timestamps {
        sock.set_tsval_generator(Some(client_tsval));
    }
    sock
}

/// `clients` concurrent clients, each running `rounds` connections one after the other
/// (connection churn: slots, handles and buffers are reused). Returns the endpoint at the end.
fn run_many(seed: u64, loss: u64, clients: usize, rounds: u16, total: usize) -> (Endpoint, bool) {
    let mut rng = Rng(seed | 1);
    let mut now_us: u64 = 1_000_000;
    let sm = |us: u64| smoltcp::time::Instant::from_micros(us as i64);
    let mut dev = SimDevice {
        rx: VecDeque::new(),
        tx: Vec::new(),
    };
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(SEth(CLIENT_MAC))),
        &mut dev,
        sm(now_us),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap();
    });
    let mut sockets = SocketSet::new(vec![]);
    let port = |c: usize, r: u16| 20000 + (c as u16) * 100 + r;
    let mut cl: Vec<Client> = (0..clients)
        .map(|c| {
            let h = sockets.add(new_client_socket(c % 2 == 0));
            sockets
                .get_mut::<tcp::Socket>(h)
                .connect(
                    iface.context(),
                    (IpAddress::v4(10, 0, 0, 1), 80),
                    port(c, 0),
                )
                .unwrap();
            Client {
                handle: h,
                round: 0,
                sent: 0,
                got: Vec::new(),
                closed: false,
            }
        })
        .collect();
    let cfg = TcpConfig {
        max_connections: 2 * clients,
        rx_buffer: 8 * 1024,
        tx_buffer: 8 * 1024,
        ..TcpConfig::default()
    };
    let mut ep = Endpoint::new(cfg, [3; 32], Instant::from_micros(now_us));
    let mut srv: std::collections::HashMap<ConnHandle, ServerSide> = Default::default();
    let mut c2s = Link {
        q: Vec::new(),
        loss,
        dup: 10,
        jitter_us: 6_000,
    };
    let mut s2c = Link {
        q: Vec::new(),
        loss,
        dup: 10,
        jitter_us: 6_000,
    };
    let stream: Vec<u8> = (0..total).map(|i| (i * 13 % 253) as u8).collect();
    let expect: Vec<u8> = stream.iter().map(|b| b ^ 0x5A).collect();
    let mut ok = true;
    let mut buf = vec![0u8; 2048];
    let mut done = 0;
    for _ in 0..5_000_000 {
        VCLOCK_MS.with(|c| c.set((now_us / 1000) as u32));
        iface.poll(sm(now_us), &mut dev, &mut sockets);
        for (ci, c) in cl.iter_mut().enumerate() {
            if c.round >= rounds {
                continue;
            }
            let s = sockets.get_mut::<tcp::Socket>(c.handle);
            if s.can_send() && c.sent < total {
                c.sent += s.send_slice(&stream[c.sent..]).unwrap_or(0);
            }
            while s.can_recv() {
                let mut tmp = [0u8; 4096];
                let n = s.recv_slice(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break;
                }
                c.got.extend_from_slice(&tmp[..n]);
            }
            if c.got.len() >= total && !c.closed {
                s.close();
                c.closed = true;
            }
            let st = s.state();
            if c.closed && matches!(st, tcp::State::TimeWait | tcp::State::Closed) {
                ok &= c.got == expect;
                done += 1;
                sockets.remove(c.handle);
                c.round += 1;
                c.sent = 0;
                c.got.clear();
                c.closed = false;
                if c.round < rounds {
                    let h = sockets.add(new_client_socket(ci % 2 == 0));
                    sockets
                        .get_mut::<tcp::Socket>(h)
                        .connect(
                            iface.context(),
                            (IpAddress::v4(10, 0, 0, 1), 80),
                            port(ci, c.round),
                        )
                        .unwrap();
                    c.handle = h;
                }
            } else if st == tcp::State::Closed && !c.closed {
                // Reset by the server: a failure.
                ok = false;
                c.round = rounds;
            }
        }
        iface.poll(sm(now_us), &mut dev, &mut sockets);
        for f in dev.tx.drain(..) {
            if let Some(r) = arp_reply(&f) {
                dev.rx.push_back(r);
            } else {
                trace("C>S", now_us, &f);
                c2s.send(&mut rng, now_us, f);
            }
        }
        let t = Instant::from_micros(now_us);
        for f in c2s.due(now_us) {
            let _ = ep.handle_frame(t, &f);
        }
        ep.handle_timeout(t);
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::Established { conn, .. } => {
                    assert!(srv.insert(conn, ServerSide::default()).is_none());
                }
                Event::PeerClosed(h) => {
                    if let Some(s) = srv.get_mut(&h) {
                        s.peer_closed = true;
                    }
                }
                Event::Closed { conn, .. } => {
                    assert!(srv.remove(&conn).is_some(), "Closed once per Established");
                }
                _ => {}
            }
        }
        for (&h, st) in srv.iter_mut() {
            let (a, b) = ep.recv_slices(h);
            let input: Vec<u8> = [a, b].concat();
            let (x, y) = ep.send_space(h);
            let mut n = 0;
            for (dst, src) in x.iter_mut().chain(y.iter_mut()).zip(input.iter()) {
                *dst = src ^ 0x5A;
                n += 1;
            }
            ep.commit_send(h, n);
            ep.consume(h, n);
            if st.peer_closed && input.len() == n && !st.closing {
                ep.close(h);
                st.closing = true;
            }
        }
        while let Some(n) = ep.poll_transmit(t, &mut buf) {
            trace("S>C", now_us, &buf[..n]);
            s2c.send(&mut rng, now_us, buf[..n].to_vec());
        }
        for f in s2c.due(now_us) {
            dev.rx.push_back(f);
        }
        if done == clients * rounds as usize && ep.connection_count() == 0 {
            break;
        }
        let mut next = now_us + 50_000;
        if let Some(d) = iface.poll_delay(sm(now_us), &sockets) {
            next = next.min(now_us + d.total_micros().max(1));
        }
        if let Some(at) = ep.poll_timeout() {
            next = next.min(at.as_micros().max(now_us + 1));
        }
        for l in [&c2s, &s2c] {
            if let Some(at) = l.next_at() {
                next = next.min(at.max(now_us + 1));
            }
        }
        if !dev.rx.is_empty() {
            next = now_us;
        }
        now_us = next.max(now_us);
        if now_us > 3_600_000_000 {
            break;
        }
    }
    ok &= done == clients * rounds as usize;
    if std::env::var("SIM_DEBUG").is_ok() {
        eprintln!(
            "many seed {seed}: done {done} t={}ms stats {:?}",
            now_us / 1000,
            ep.stats()
        );
    }
    (ep, ok)
}

#[test]
fn sim_many_clients_with_connection_churn() {
    for seed in [5u64, 8, 10] {
        let (ep, ok) = run_many(seed, 30, 6, 4, 20_000);
        assert!(ok, "seed {seed}");
        assert_eq!(ep.connection_count(), 0);
        assert_eq!(ep.poll_timeout(), None, "seed {seed}: no timer remains");
        assert_eq!(ep.stats().connections_established, 24);
        assert_eq!(ep.stats().connections_closed, 24);
    }
}

/// The targeted-loss runs' jitter: 1 ms on a 2 ms delay, little reordering, so that the
/// losses they arrange are the only ones.
const JITTER_US: u64 = 1_000;

/// Server data segments as the link sees them: the offsets of the text's start and end in the
/// echoed stream (once the SYN-ACK told the server's ISS) and the TSval (ms) it went with.
struct ServerSegments {
    iss: Option<wire::SeqNumber>,
}

impl ServerSegments {
    fn text(&mut self, f: &[u8]) -> Option<(usize, usize, u32)> {
        let p = wire::parse_tcp_frame(f).ok()?;
        if p.tcp.flags.contains(wire::TcpFlags::SYN) {
            self.iss = Some(p.tcp.seq);
            return None;
        }
        if p.payload.is_empty() {
            return None;
        }
        let first = self.iss? + 1u32;
        let start = p.tcp.seq.distance_from(first)? as usize;
        let tsval = p.tcp.options.timestamps.map_or(0, |t| t.0);
        Some((start, start + p.payload.len(), tsval))
    }
}

/// RFC 8985 §7 with §6: the segments near the end of the echoed stream that go out in one
/// burst (within 3 ms of the first of them) are lost on their first transmission; what is
/// sent later is not. Without a probe only the RTO (200 ms at least) resends them; with it
/// the probe (new data, or the last segment again) goes 2 SRTT after the last transmission,
/// its SACK lets RACK mark the ones before it, and the stream ends well under an RTO later
/// than over a clean link. (Where more data follows the burst, RACK alone finds the loss.)
/// The link has no jitter here: with it, reordering keeps the connection in recovery, where
/// no probe is armed and RACK finds the tail's loss alone.
#[test]
fn sim_a_lost_tail_is_repaired_by_a_probe_and_rack_without_an_rto() {
    let total = 40_000;
    let mut probes = 0;
    for seed in 1..=4u64 {
        let clean = run_with(seed, 0, 0, 0, total, true, &mut |_| false);
        let mut segs = ServerSegments { iss: None };
        let mut dropped = Vec::new();
        let mut burst = None;
        let o = run_with(seed, 0, 0, 0, total, true, &mut |f| match segs.text(f) {
            Some((start, end, tsval)) if end + 4 * 1448 > total && !dropped.contains(&start) => {
                let first = *burst.get_or_insert(tsval);
                let drop = tsval.wrapping_sub(first) <= 3;
                if drop {
                    dropped.push(start);
                }
                drop
            }
            _ => false,
        });
        assert!(o.echoed_ok, "seed {seed}");
        assert_eq!(o.closed_events, o.established_events, "seed {seed}");
        assert!(dropped.len() >= 2, "seed {seed}: {dropped:?}");
        let cost_ms = o.elapsed_us.saturating_sub(clean.elapsed_us) / 1000;
        eprintln!(
            "seed {seed}: {} segments lost, {cost_ms} ms over the clean run; probes {}, RACK \
             marks {}, RTOs {}",
            dropped.len(),
            o.stats.loss_probes,
            o.stats.rack_lost,
            o.stats.rto_timeouts
        );
        assert_eq!(o.stats.rto_timeouts, 0, "seed {seed}");
        assert!(o.stats.rack_lost >= 1, "seed {seed}");
        assert!(cost_ms < 100, "seed {seed}: {cost_ms} ms");
        probes += o.stats.loss_probes;
    }
    assert!(probes >= 2, "{probes}");
}

/// RFC 8985 §6.2: a retransmission that is lost again is found lost once a segment sent
/// after it is SACKed, and goes a third time without waiting for the RTO.
#[test]
fn sim_a_lost_retransmission_is_repaired_without_an_rto() {
    let total = 80_000;
    for seed in 1..=4u64 {
        let mut segs = ServerSegments { iss: None };
        // Every segment that carries byte `victim` of the stream, the first two times.
        let victim = total / 3;
        let mut drops = 0;
        let o = run_with(
            seed,
            0,
            0,
            JITTER_US,
            total,
            true,
            &mut |f| match segs.text(f) {
                Some((start, end, _)) if (start..end).contains(&victim) && drops < 2 => {
                    drops += 1;
                    true
                }
                _ => false,
            },
        );
        assert!(o.echoed_ok, "seed {seed}");
        assert_eq!(drops, 2, "seed {seed}: the original and its retransmission");
        eprintln!(
            "seed {seed}: retransmits {}, fast {}, RACK marks {}, RTOs {}",
            o.stats.retransmits, o.stats.fast_retransmits, o.stats.rack_lost, o.stats.rto_timeouts
        );
        assert_eq!(o.stats.rto_timeouts, 0, "seed {seed}");
        assert!(o.stats.rack_lost >= 1, "seed {seed}");
        assert!(o.stats.retransmits >= 2, "seed {seed}");
    }
}
