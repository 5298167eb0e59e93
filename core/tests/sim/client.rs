//! The client: a smoltcp `Interface` with many TCP sockets, each running one connection's plan
//! of HTTP/1.1 requests (keep-alive, pipelining) and checking every response byte.

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    EthernetAddress, EthernetProtocol, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address,
};

use xgate_core::time::Instant;

use super::device::{
    fin_ports, from_smol, set_virtual_clock, to_smol, tsval, FinWatchdog, QueueDevice,
};
use super::driver::ClientShape;
use super::http::{ConnPlan, ResponseParser, Workload};
use super::rng::{Fnv, Rng};

pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const CLIENT_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
pub const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
pub const CLIENT_IP6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub const SERVER_IP6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
pub const SERVER_PORT: u16 = 80;

/// Every address on the simulated link and its MAC: what the harness answers ARP and
/// Neighbour Solicitations with, for both sides and both families.
pub const NEIGHBOURS: [(IpAddress, EthernetAddress); 4] = [
    (IpAddress::Ipv4(CLIENT_IP), CLIENT_MAC),
    (IpAddress::Ipv4(SERVER_IP), SERVER_MAC),
    (IpAddress::Ipv6(CLIENT_IP6), CLIENT_MAC),
    (IpAddress::Ipv6(SERVER_IP6), SERVER_MAC),
];

/// The IP family a run's client speaks (the reference server speaks both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    pub fn client_ip(self) -> IpAddress {
        match self {
            Family::V4 => IpAddress::Ipv4(CLIENT_IP),
            Family::V6 => IpAddress::Ipv6(CLIENT_IP6),
        }
    }

    pub fn server_ip(self) -> IpAddress {
        match self {
            Family::V4 => IpAddress::Ipv4(SERVER_IP),
            Family::V6 => IpAddress::Ipv6(SERVER_IP6),
        }
    }

    pub fn prefix_len(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }

    pub fn ethertype(self) -> EthernetProtocol {
        match self {
            Family::V4 => EthernetProtocol::Ipv4,
            Family::V6 => EthernetProtocol::Ipv6,
        }
    }

    /// The IP header of every packet in a run: neither side sends IPv4 options or IPv6
    /// extension headers, so a path MTU less this less 20 is the MSS.
    pub fn ip_header_len(self) -> usize {
        match self {
            Family::V4 => 20,
            Family::V6 => 40,
        }
    }

    /// What `SIM_FAMILY` says for this family.
    pub fn number(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }
}

/// Socket buffers large enough for window scaling to matter.
pub const SOCKET_BUFFER: usize = 512 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    /// All responses in; the client has closed (or is waiting for the server's FIN after
    /// `Connection: close`).
    Closing,
    /// Reset by the client as planned; waiting for smoltcp to send the RST.
    Aborting,
    Done,
}

struct Conn {
    plan: ConnPlan,
    phase: Phase,
    handle: Option<SocketHandle>,
    /// Serialised requests not yet accepted by the socket.
    out: Vec<u8>,
    out_pos: usize,
    /// Requests serialised so far, and responses completed so far.
    sent: usize,
    answered: usize,
    parser: ResponseParser,
    watchdog: FinWatchdog,
}

impl Conn {
    fn fill_pipeline(&mut self) {
        while self.sent < self.plan.requests.len() && self.sent - self.answered < self.plan.pipeline
        {
            if self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            self.plan.requests[self.sent].write_to(&mut self.out);
            self.sent += 1;
        }
    }
}

/// Totals over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub connections: usize,
    pub requests: usize,
    pub body_bytes: usize,
    /// Connections the client reset on purpose (the plan's `abort_after`).
    pub aborted: usize,
    /// Client sockets reset by the [`FinWatchdog`] (smoltcp lost track of its own FIN).
    pub fin_watchdog: usize,
}

pub struct Client {
    iface: Interface,
    pub device: QueueDevice,
    sockets: SocketSet<'static>,
    conns: Vec<Conn>,
    concurrency: usize,
    next_port: u16,
    rng: Rng,
    pub stats: ClientStats,
    /// Whether sockets send RFC 7323 timestamps.
    timestamps: bool,
    server_ip: IpAddress,
}

impl Client {
    pub fn new(workload: Workload, mut rng: Rng, now: Instant, shape: ClientShape) -> Self {
        let mut device = QueueDevice {
            mtu: Some(shape.mtu),
            ..QueueDevice::default()
        };
        let mut config = Config::new(HardwareAddress::Ethernet(CLIENT_MAC));
        config.random_seed = rng.next_u64();
        let mut iface = Interface::new(config, &mut device, to_smol(now));
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(
                    shape.family.client_ip(),
                    shape.family.prefix_len(),
                ))
                .expect("one address");
        });
        let next_port = rng.range(20_000, 40_000) as u16;
        let conns = workload
            .conns
            .into_iter()
            .map(|plan| Conn {
                plan,
                phase: Phase::Waiting,
                handle: None,
                out: Vec::new(),
                out_pos: 0,
                sent: 0,
                answered: 0,
                parser: ResponseParser::default(),
                watchdog: FinWatchdog::default(),
            })
            .collect();
        Client {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            conns,
            concurrency: workload.concurrency,
            next_port,
            rng,
            stats: ClientStats::default(),
            timestamps: shape.timestamps,
            server_ip: shape.family.server_ip(),
        }
    }

    /// Every connection finished its plan and its socket is fully closed.
    pub fn done(&self) -> bool {
        self.conns.iter().all(|c| c.phase == Phase::Done)
    }

    /// A one-line account of where each unfinished connection is, for failure messages.
    pub fn describe_pending(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.conns.iter().enumerate() {
            if c.phase == Phase::Done || c.phase == Phase::Waiting {
                continue;
            }
            let state = c
                .handle
                .map(|h| {
                    let socket = self.sockets.get::<tcp::Socket>(h);
                    let port = socket.local_endpoint().map_or(0, |e| e.port);
                    format!("port {port} {}", socket.state())
                })
                .unwrap_or_default();
            s.push_str(&format!(
                "[conn {i} {:?} {state} sent {}/{} answered {} out {}/{}] ",
                c.phase,
                c.sent,
                c.plan.requests.len(),
                c.answered,
                c.out_pos,
                c.out.len()
            ));
        }
        let waiting = self
            .conns
            .iter()
            .filter(|c| c.phase == Phase::Waiting)
            .count();
        s.push_str(&format!("{waiting} not started"));
        s
    }

    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let watchdogs = self.conns.iter().filter_map(|c| c.watchdog.deadline());
        self.iface
            .poll_at(to_smol(now), &self.sockets)
            .map(from_smol)
            .into_iter()
            .chain(watchdogs)
            .min()
    }

    fn open(&mut self, i: usize) {
        let rx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
        let tx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_nagle_enabled(false);
        if self.timestamps {
            socket.set_tsval_generator(Some(tsval));
        }
        if self.rng.chance(0.5) {
            socket.set_ack_delay(None);
        }
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        socket
            .connect(self.iface.context(), (self.server_ip, SERVER_PORT), port)
            .expect("connect");
        let handle = self.sockets.add(socket);
        let c = &mut self.conns[i];
        c.handle = Some(handle);
        c.phase = Phase::Running;
        self.stats.connections += 1;
    }

    /// Runs the interface and the connections until nothing more happens at `now`.
    pub fn poll(&mut self, now: Instant, trace: &mut Fnv) -> Result<(), String> {
        set_virtual_clock(now);
        loop {
            let active = self
                .conns
                .iter()
                .filter(|c| c.phase == Phase::Running)
                .count();
            let mut room = self.concurrency.saturating_sub(active);
            let mut i = 0;
            while room > 0 && i < self.conns.len() {
                if self.conns[i].phase == Phase::Waiting {
                    self.open(i);
                    room -= 1;
                }
                i += 1;
            }
            let before = self.device.tx.len();
            self.iface
                .poll(to_smol(now), &mut self.device, &mut self.sockets);
            for frame in self.device.tx.iter().skip(before) {
                if let Some((port, _)) = fin_ports(frame) {
                    let sockets = &self.sockets;
                    let conn = self.conns.iter_mut().find(|c| {
                        c.handle.is_some_and(|h| {
                            sockets
                                .get::<tcp::Socket>(h)
                                .local_endpoint()
                                .is_some_and(|e| e.port == port)
                        })
                    });
                    if let Some(c) = conn {
                        c.watchdog.fin_sent(now);
                    }
                }
            }
            let mut progress = false;
            for i in 0..self.conns.len() {
                progress |= self
                    .drive(i, now, trace)
                    .map_err(|e| format!("client conn {i}: {e}"))?;
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Moves one connection forward; true if anything changed.
    fn drive(&mut self, i: usize, now: Instant, trace: &mut Fnv) -> Result<bool, String> {
        let c = &mut self.conns[i];
        let Some(handle) = c.handle else {
            return Ok(false);
        };
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        let mut progress = false;
        match c.phase {
            Phase::Waiting | Phase::Done => return Ok(false),
            Phase::Running if c.plan.abort_after == Some(c.answered) => {
                socket.abort();
                self.stats.aborted += 1;
                c.phase = Phase::Aborting;
                progress = true;
            }
            Phase::Aborting => {
                if socket.remote_endpoint().is_none() {
                    self.sockets.remove(handle);
                    c.handle = None;
                    c.phase = Phase::Done;
                    progress = true;
                }
            }
            Phase::Running => {
                c.fill_pipeline();
                if c.out_pos < c.out.len() && socket.can_send() {
                    let n = socket
                        .send_slice(&c.out[c.out_pos..])
                        .map_err(|e| e.to_string())?;
                    c.out_pos += n;
                    progress |= n > 0;
                }
                while socket.can_recv() {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = socket.recv_slice(&mut chunk).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    progress = true;
                    let mut data = &chunk[..n];
                    loop {
                        let current = (c.answered < c.sent).then(|| &c.plan.requests[c.answered]);
                        let done = c
                            .parser
                            .feed(data, current)
                            .map_err(|e| format!("response {}: {e}", c.answered))?;
                        data = &[];
                        if !done {
                            break;
                        }
                        let req = &c.plan.requests[c.answered];
                        trace.u64(req.body_len() as u64);
                        self.stats.requests += 1;
                        self.stats.body_bytes += req.body_len();
                        c.answered += 1;
                        if c.plan.abort_after == Some(c.answered) {
                            return Ok(true);
                        }
                        if c.parser.close && c.answered < c.plan.requests.len() {
                            return Err(format!(
                                "server sent Connection: close on response {} of {}",
                                c.answered,
                                c.plan.requests.len()
                            ));
                        }
                        c.fill_pipeline();
                    }
                }
                if c.answered == c.plan.requests.len() {
                    if !c.parser.idle() {
                        return Err("bytes after the last response".into());
                    }
                    let last_close = c.plan.requests.last().is_some_and(|r| r.close);
                    if !last_close {
                        socket.close();
                    }
                    // Keep-alive probes find out if the server forgot the connection while we
                    // wait for its FIN (its RST may have been lost); a live server just ACKs.
                    socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(30)));
                    c.phase = Phase::Closing;
                    progress = true;
                } else if !socket.may_recv() && socket.state() != tcp::State::SynSent {
                    return Err(format!(
                        "connection closed by the server ({}) after {} of {} responses",
                        socket.state(),
                        c.answered,
                        c.plan.requests.len()
                    ));
                }
            }
            Phase::Closing if c.watchdog.expired(now, socket) => {
                socket.abort();
                self.stats.fin_watchdog += 1;
                c.phase = Phase::Aborting;
                progress = true;
            }
            Phase::Closing => {
                if socket.can_recv() {
                    let mut chunk = [0u8; 1024];
                    let n = socket.recv_slice(&mut chunk).unwrap_or(0);
                    if n > 0 {
                        return Err(format!("{n} bytes after the last response"));
                    }
                }
                if !socket.may_recv() && socket.may_send() {
                    // The server closed after `Connection: close`; close our side too.
                    socket.close();
                    progress = true;
                }
                if socket.state() == tcp::State::Closed {
                    self.sockets.remove(handle);
                    c.handle = None;
                    c.phase = Phase::Done;
                    progress = true;
                }
            }
        }
        Ok(progress)
    }
}
