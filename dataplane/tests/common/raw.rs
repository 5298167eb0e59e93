//! Packet-level harness of the hostile-TCP and conformance suites: crafted frames from the
//! client netns through an AF_PACKET socket, replies read back per 4-tuple.
//!
//! The crafted segments come from spoofed sources in `10.78.0.0/16`, which the client kernel
//! does not own, so it never answers the gateway's replies with a RST of its own (it drops
//! them: forwarding is off in the client netns). The gateway netns routes that subnet via the
//! client's address, so the Linux stack (a port whose bypass is off, served by the kernel
//! path) answers the same scripts as the bypass does. Both veths have their checksum and
//! segmentation offloads off, so every frame seen on the wire is whole and checksummed.
//!
//! A flow may be IPv6 as well ([`Family`]): both veths also have the addresses of
//! `Topology::add_ipv6` (the gateway fd78:6761:7465::1/64), and the spoofed IPv6 sources are
//! in `fd78:6761:7465::1:0/112`, inside the client's /64. The gateway netns routes that /112
//! via the client's address as it routes the IPv4 subnet (the longer prefix wins over the
//! /64 on-link route), so its kernel never asks Neighbor Discovery for a spoofed address,
//! which nobody would answer; the client's kernel, IPv6 forwarding off, drops what comes
//! back to them.
//!
//! `Rig` is a topology plus an in-process `Bypass` with two ports -- `BYPASS_PORT` (on) and
//! `KERNEL_PORT` (off) -- whose listeners are both served by the real `KernelPath` on its own
//! thread; dropping it stops everything it started, also on panic.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataplane::app::App;
use dataplane::gateway::{Bypass, BypassConfig, CgroupPlacement, PortConfig};
use dataplane::kernel::{KernelConfig, KernelPath};
use dataplane::wire::{
    emit_tcp_frame, parse_tcp_frame, tcp_frame_len, EthernetAddress, FrameAddrs, IpPair, SeqNumber,
    TcpFlags, TcpHeader, TcpOptions,
};
use xgate_testnet::packet::PacketSocket;
use xgate_testnet::{CLIENT_IP6, SERVER_IP6};

use super::{run, Topology, CLIENT_IP, GW_IP};

/// The port served by the bypass (xgate's engine).
pub const BYPASS_PORT: u16 = 18190;
/// The port whose bypass is off: the Linux stack, through the kernel path.
pub const KERNEL_PORT: u16 = 18191;
pub const SPOOF_NET: &str = "10.78.0.0/16";

pub const SPOOF_NET6: &str = "fd78:6761:7465::1:0/112";

/// The `n`-th spoofed client address (n < 64000), never a .0 or .255.
pub fn spoofed(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 78, (n / 250) as u8, (n % 250 + 1) as u8)
}

/// The `n`-th spoofed IPv6 client address (n < 64000), in [`SPOOF_NET6`].
pub fn spoofed6(n: u32) -> Ipv6Addr {
    assert!(n < 64000, "spoofed6({n})");
    let s = SERVER_IP6.segments();
    Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 1, (n + 1) as u16)
}

/// The address family of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The `n`-th spoofed client address of this family.
    pub fn spoofed(self, n: u32) -> IpAddr {
        match self {
            Family::V4 => spoofed(n).into(),
            Family::V6 => spoofed6(n).into(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Waits up to `timeout` for either socket to be readable.
fn wait_either(a: &PacketSocket, b: &PacketSocket, timeout: Duration) {
    let mut fds = [a.as_fd().as_raw_fd(), b.as_fd().as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: poll(2) on a live array of two pollfds; an error or a signal is a timeout here.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout.as_millis() as libc::c_int) };
}

/// A segment the gateway sent, owned.
#[derive(Debug, Clone)]
pub struct Got {
    pub hdr: TcpHeader,
    pub payload: Vec<u8>,
    pub at: Instant,
}

impl Got {
    pub fn has(&self, f: TcpFlags) -> bool {
        self.hdr.flags.contains(f)
    }
}

type FlowMap = HashMap<(IpAddr, u16), Sender<Got>>;

/// The AF_PACKET socket on the client veth and the thread that sorts what it reads by
/// destination (spoofed address, port).
pub struct Wire {
    socket: Arc<PacketSocket>,
    socket6: Arc<PacketSocket>,
    pub client_mac: EthernetAddress,
    pub gw_mac: EthernetAddress,
    pub gw_ip: Ipv4Addr,
    pub gw_ip6: Ipv6Addr,
    flows: Arc<Mutex<FlowMap>>,
    /// Frames from the gateway that no flow claimed (e.g. SYN-ACKs to a flood's sources).
    pub unclaimed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Wire {
    pub fn open(topo: &Topology) -> Wire {
        // The socket stays bound to the client netns' interface; no thread of ours changes
        // namespace for longer than it takes to open it.
        let socket = PacketSocket::open(&topo.client_ns, &topo.client_if)
            .expect("AF_PACKET socket in the client netns");
        let socket = Arc::new(socket);
        let socket6 =
            PacketSocket::open_for(&topo.client_ns, &topo.client_if, libc::ETH_P_IPV6 as u16)
                .expect("IPv6 AF_PACKET socket in the client netns");
        let socket6 = Arc::new(socket6);
        let flows: Arc<Mutex<FlowMap>> = Arc::default();
        let unclaimed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let gw_ip: Ipv4Addr = GW_IP.parse().unwrap();
        let thread = {
            let (socket, socket6, flows, unclaimed, stop) = (
                Arc::clone(&socket),
                Arc::clone(&socket6),
                Arc::clone(&flows),
                Arc::clone(&unclaimed),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    wait_either(&socket, &socket6, Duration::from_millis(50));
                    let next = |buf: &mut [u8]| match socket.try_recv(buf) {
                        Ok(Some(n)) => Some(n),
                        _ => socket6.try_recv(buf).ok().flatten(),
                    };
                    while let Some(n) = next(&mut buf) {
                        let Ok(f) = parse_tcp_frame(&buf[..n]) else {
                            continue;
                        };
                        let (src, dst): (IpAddr, IpAddr) = match f.addrs.ip {
                            IpPair::V4 { src, dst } => (src.into(), dst.into()),
                            IpPair::V6 { src, dst } => (src.into(), dst.into()),
                        };
                        if src != IpAddr::V4(gw_ip) && src != IpAddr::V6(SERVER_IP6) {
                            continue;
                        }
                        let got = Got {
                            hdr: f.tcp,
                            payload: f.payload.to_vec(),
                            at: Instant::now(),
                        };
                        let key = (dst, f.tcp.dst_port);
                        let map = flows.lock().unwrap_or_else(|e| e.into_inner());
                        match map.get(&key) {
                            Some(tx) => {
                                let _ = tx.send(got);
                            }
                            None => {
                                unclaimed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        };
        Wire {
            socket,
            socket6,
            client_mac: EthernetAddress(topo.client_mac().expect("client MAC")),
            gw_mac: EthernetAddress(topo.server_mac().expect("gateway MAC")),
            gw_ip,
            gw_ip6: SERVER_IP6,
            flows,
            unclaimed,
            stop,
            thread: Some(thread),
        }
    }

    /// Puts one whole Ethernet frame on the client veth.
    pub fn send(&self, frame: &[u8]) {
        let ipv6 = frame.get(12..14) == Some(&[0x86, 0xdd]);
        let sent = if ipv6 {
            self.socket6.send(frame)
        } else {
            self.socket.send(frame)
        };
        if let Err(e) = sent {
            panic!("AF_PACKET send: {e}");
        }
    }

    /// Addressing of a frame from `src` to the gateway's address of the same family.
    pub fn addrs(&self, src: impl Into<IpAddr>) -> FrameAddrs {
        FrameAddrs {
            eth_src: self.client_mac,
            eth_dst: self.gw_mac,
            vlan: None,
            ip: match src.into() {
                IpAddr::V4(src) => IpPair::V4 {
                    src,
                    dst: self.gw_ip,
                },
                IpAddr::V6(src) => IpPair::V6 {
                    src,
                    dst: self.gw_ip6,
                },
            },
        }
    }

    /// A scripted client flow from `src:sport` to the gateway's `dport`.
    pub fn flow(&self, src: impl Into<IpAddr>, sport: u16, dport: u16, isn: u32) -> Flow<'_> {
        let src = src.into();
        let (tx, rx) = mpsc::channel();
        self.flows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((src, sport), tx);
        Flow {
            wire: self,
            addrs: self.addrs(src),
            sport,
            dport,
            rx,
            snd_nxt: SeqNumber(isn),
            rcv_nxt: SeqNumber(0),
            window: 65535,
            peer_window: 0,
            peer_wscale: 0,
            peer_wnd: 0,
            ts: None,
            ts_echo: 0,
            ip_id: 1,
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One spoofed client connection: our sequence numbers and what we learnt of the server's.
pub struct Flow<'w> {
    pub wire: &'w Wire,
    pub addrs: FrameAddrs,
    pub sport: u16,
    pub dport: u16,
    rx: Receiver<Got>,
    /// Our next sequence number (the server's RCV.NXT once it has everything).
    pub snd_nxt: SeqNumber,
    /// The next sequence number we expect from the server.
    pub rcv_nxt: SeqNumber,
    /// Window we advertise.
    pub window: u16,
    /// The window field of the server's latest segment.
    pub peer_window: u16,
    /// The server's window shift (RFC 7323 §2), once the handshake negotiated one.
    pub peer_wscale: u8,
    /// The server's latest window in octets (scaled, except in its SYN-ACK).
    pub peer_wnd: u32,
    /// Our TSval once timestamps are negotiated (RFC 7323 §3.2): every segment `header`
    /// builds then carries `(ts, ts_echo)`. Tests change it to send old or new TSvals.
    pub ts: Option<u32>,
    /// The TSval of the server's latest segment (what we echo).
    pub ts_echo: u32,
    pub ip_id: u16,
}

impl Drop for Flow<'_> {
    fn drop(&mut self) {
        let src: IpAddr = match self.addrs.ip {
            IpPair::V4 { src, .. } => src.into(),
            IpPair::V6 { src, .. } => src.into(),
        };
        self.wire
            .flows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(src, self.sport));
    }
}

impl Flow<'_> {
    pub fn header(&self, flags: TcpFlags, seq: SeqNumber, ack: SeqNumber) -> TcpHeader {
        let mut options = TcpOptions::default();
        if let Some(v) = self.ts {
            options.timestamps = Some((v, self.ts_echo));
        }
        TcpHeader {
            src_port: self.sport,
            dst_port: self.dport,
            seq,
            ack,
            flags,
            window: self.window,
            urgent: 0,
            options,
        }
    }

    /// The frame of `hdr` + `payload` from this flow.
    pub fn frame(&mut self, hdr: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; tcp_frame_len(&self.addrs, hdr, payload.len())];
        self.ip_id = self.ip_id.wrapping_add(1);
        let n = emit_tcp_frame(&mut buf, &self.addrs, self.ip_id, 64, hdr, [payload, &[]])
            .expect("frame fits");
        buf.truncate(n);
        buf
    }

    pub fn send(&mut self, hdr: &TcpHeader, payload: &[u8]) {
        let f = self.frame(hdr, payload);
        self.wire.send(&f);
    }

    /// Sends a segment with our current numbers (ACK set) and advances `snd_nxt`.
    pub fn send_data(&mut self, payload: &[u8]) {
        let h = self.header(TcpFlags::ACK | TcpFlags::PSH, self.snd_nxt, self.rcv_nxt);
        self.send(&h, payload);
        self.snd_nxt = self.snd_nxt + payload.len();
    }

    /// A pure ACK of everything received.
    pub fn send_ack(&mut self) {
        let h = self.header(TcpFlags::ACK, self.snd_nxt, self.rcv_nxt);
        self.send(&h, &[]);
    }

    /// Our FIN (with an ACK of everything received).
    pub fn send_fin(&mut self) {
        let h = self.header(TcpFlags::FIN | TcpFlags::ACK, self.snd_nxt, self.rcv_nxt);
        self.send(&h, &[]);
        self.snd_nxt = self.snd_nxt + 1u32;
    }

    pub fn recv(&mut self, timeout: Duration) -> Option<Got> {
        let g = self.rx.recv_timeout(timeout).ok()?;
        self.peer_window = g.hdr.window;
        let shift = if g.has(TcpFlags::SYN) {
            0
        } else {
            self.peer_wscale
        };
        self.peer_wnd = u32::from(g.hdr.window) << shift;
        if let Some((tsval, _)) = g.hdr.options.timestamps {
            self.ts_echo = tsval;
        }
        Some(g)
    }

    /// Everything the server sends within `dur`.
    pub fn collect(&mut self, dur: Duration) -> Vec<Got> {
        let end = Instant::now() + dur;
        let mut v = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(g) => v.push(g),
                None => break,
            }
        }
        v
    }

    /// Waits for a segment matching `pred` (others are dropped), up to `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Got) -> bool) -> Option<Got> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let g = self.recv(left)?;
            if pred(&g) {
                return Some(g);
            }
        }
        None
    }

    /// SYN with `options`, SYN-ACK back (returned), ACK. Err with what came instead. Window
    /// scaling and timestamps are in use afterwards if both sides offered them.
    pub fn handshake(&mut self, options: TcpOptions) -> Result<Got, String> {
        let mut syn = self.header(TcpFlags::SYN, self.snd_nxt, SeqNumber(0));
        syn.options = options;
        self.send(&syn, &[]);
        self.snd_nxt = self.snd_nxt + 1u32;
        let sa = self
            .wait_for(Duration::from_secs(2), |g| {
                g.has(TcpFlags::SYN) || g.has(TcpFlags::RST)
            })
            .ok_or("no SYN-ACK within 2 s")?;
        if !sa.has(TcpFlags::SYN | TcpFlags::ACK) || sa.hdr.ack != self.snd_nxt {
            return Err(format!("bad SYN-ACK {:?}", sa.hdr));
        }
        self.rcv_nxt = sa.hdr.seq + 1u32;
        if let (Some(_), Some(ws)) = (options.window_scale, sa.hdr.options.window_scale) {
            self.peer_wscale = ws.min(14);
        }
        if let (Some((tsval, _)), Some(_)) = (options.timestamps, sa.hdr.options.timestamps) {
            self.ts = Some(tsval);
        }
        self.send_ack();
        Ok(sa)
    }

    /// Reads server data in order (ACKing it) until `done(bytes so far)` or `timeout`;
    /// returns the bytes and whether the server's FIN came.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) -> (Vec<u8>, bool) {
        let end = Instant::now() + timeout;
        let mut data = Vec::new();
        let mut fin = false;
        while !done(&data) && !fin {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                break;
            };
            let Some(g) = self.recv(left) else { break };
            if g.has(TcpFlags::RST) {
                break;
            }
            if g.hdr.seq == self.rcv_nxt {
                data.extend_from_slice(&g.payload);
                self.rcv_nxt = self.rcv_nxt + g.payload.len();
                if g.has(TcpFlags::FIN) {
                    self.rcv_nxt = self.rcv_nxt + 1u32;
                    fin = true;
                }
            }
            if !g.payload.is_empty() || g.has(TcpFlags::FIN) {
                self.send_ack();
            }
        }
        (data, fin)
    }
}

/// The client netns, both veths, the gateway (bypass on `BYPASS_PORT`, off on
/// `KERNEL_PORT`), the kernel path serving both listeners, and the raw wire.
pub struct Rig {
    pub wire: Option<Wire>,
    kernel_stop: Arc<AtomicBool>,
    kernel: Option<JoinHandle<()>>,
    pub gw: Option<Bypass>,
    pub topo: Topology,
}

impl Rig {
    /// `tune` may change the gateway's configuration (engine limits) before it starts.
    pub fn start(tune: impl FnOnce(&mut BypassConfig)) -> Rig {
        // Whole, checksummed frames on the gateway's side too (the kernel path's replies).
        let mut topo = Topology::create_with(true);
        run(&[
            "ip",
            "-n",
            &topo.server_ns,
            "route",
            "add",
            SPOOF_NET,
            "via",
            CLIENT_IP,
        ]);
        topo.add_ipv6()
            .unwrap_or_else(|e| panic!("IPv6 on the veths: {e}"));
        let via6 = CLIENT_IP6.to_string();
        run(&[
            "ip",
            "-n",
            &topo.server_ns,
            "-6",
            "route",
            "add",
            SPOOF_NET6,
            "via",
            &via6,
        ]);
        // The client kernel drops what is addressed to the spoofed sources (no RST, no ICMP).
        for forwarding in ["net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"] {
            run(&[
                "ip",
                "netns",
                "exec",
                &topo.client_ns,
                "sysctl",
                "-qw",
                forwarding,
            ]);
        }
        topo.enter_gateway();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut config = BypassConfig::new(
            topo.server_if.clone(),
            [
                PortConfig {
                    port: BYPASS_PORT,
                    bypass: true,
                },
                PortConfig {
                    port: KERNEL_PORT,
                    bypass: false,
                },
            ],
        );
        config.cgroup = CgroupPlacement::Join(topo.cgroup.clone());
        config.cores = (0..4).map(|q| q % ncpu).collect();
        tune(&mut config);
        let started = Bypass::start(&config);
        assert!(topo.leave_gateway(), "setns back to the test's netns");
        let mut gw = started.expect("starting the gateway");
        let listeners: Vec<OwnedFd> = [BYPASS_PORT, KERNEL_PORT]
            .iter()
            .map(|p| OwnedFd::from(gw.take_listener(*p).expect("the port's listener")))
            .collect();
        let app_config = config.app.clone();
        let kernel_stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&kernel_stop);
        let (ready_tx, ready_rx) = mpsc::channel();
        let kernel = std::thread::spawn(move || {
            let app = App::new(&app_config).expect("app");
            let mut kp = KernelPath::new(KernelConfig::default(), app).expect("kernel path");
            for fd in listeners {
                kp.add_listener(fd).expect("kernel path listener");
            }
            let _ = ready_tx.send(());
            kp.run(&flag).expect("kernel path");
            let _ = kp.shutdown(dataplane::time::Duration::from_millis(200));
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("kernel path started");
        let wire = Wire::open(&topo);
        eprintln!(
            "rig {}: gateway {:?}, {} queue(s); bypass :{BYPASS_PORT}, kernel :{KERNEL_PORT}",
            topo.name,
            gw.steering().attached_mode(),
            gw.queues()
        );
        Rig {
            wire: Some(wire),
            kernel_stop,
            kernel: Some(kernel),
            gw: Some(gw),
            topo,
        }
    }

    pub fn wire(&self) -> &Wire {
        self.wire.as_ref().expect("wire")
    }

    pub fn gw(&self) -> &Bypass {
        self.gw.as_ref().expect("gateway")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop(self.wire.take());
        self.kernel_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.kernel.take() {
            let _ = t.join();
        }
        drop(self.gw.take());
        // `topo` drops after this: netns, veths, cgroup.
    }
}

/// IPv4 header checksum over `hdr` (checksum field included as it is).
fn ip_checksum(hdr: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in hdr.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn fix_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[24] = 0;
    frame[25] = 0;
    let c = ip_checksum(&frame[14..14 + ihl]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// `frame` (Ethernet/IPv4 without options) with `opts` (a multiple of 4 bytes) inserted as
/// IPv4 options; lengths and the header checksum fixed (the TCP checksum does not cover them).
pub fn with_ip_options(frame: &[u8], opts: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut f = frame[..34].to_vec();
    f.extend_from_slice(opts);
    f.extend_from_slice(&frame[34..]);
    f[14] = 0x40 | ((20 + opts.len()) / 4) as u8;
    let total = u16::from_be_bytes([f[16], f[17]]) + opts.len() as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ip_checksum(&mut f);
    f
}

/// `frame` split into IPv4 fragments whose payload parts are `first` bytes (a multiple of 8)
/// and the rest; DF cleared.
pub fn fragments(frame: &[u8], first: usize) -> [Vec<u8>; 2] {
    assert_eq!(first % 8, 0);
    let ip_payload = &frame[34..];
    assert!(first < ip_payload.len());
    let part = |data: &[u8], offset: usize, more: bool| {
        let mut f = frame[..34].to_vec();
        f.extend_from_slice(data);
        let total = (20 + data.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        let flags_off = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&flags_off.to_be_bytes());
        fix_ip_checksum(&mut f);
        f
    };
    [
        part(&ip_payload[..first], 0, true),
        part(&ip_payload[first..], first, false),
    ]
}

/// `frame` (Ethernet/IPv4) with its TCP checksum broken.
pub fn bad_tcp_checksum(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let ihl = usize::from(f[14] & 0x0f) * 4;
    f[14 + ihl + 16] ^= 0x5a;
    f
}

/// `frame` with its IPv4 header checksum broken.
pub fn bad_ip_checksum(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[24] ^= 0x5a;
    f
}
