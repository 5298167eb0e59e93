//! A reference server built on smoltcp itself: an `Interface`, a pool of listening sockets and a
//! minimal HTTP/1.1 responder for `GET /bytes/{n}` and `POST /echo`. It proves the harness before
//! the engine exists, and implements `SimServer` exactly as the engine will.

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use std::collections::BTreeSet;

use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use xgate_core::time::Instant;

use super::client::{Family, SERVER_MAC, SERVER_PORT, SOCKET_BUFFER};
use super::device::{
    fin_ports, from_smol, set_virtual_clock, tcp_segment, to_smol, tsval, FinWatchdog, QueueDevice,
};
use super::http::pattern_byte;
use super::SimServer;

/// Deliberate faults, to prove the harness notices a wrong server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Flips one byte in the body of the `n`th response with a non-empty body.
    CorruptBody(usize),
    /// Never closes connections (the end-of-run `connection_count() == 0` check must fail).
    NeverClose,
}

struct Conn {
    handle: SocketHandle,
    input: Vec<u8>,
    output: Vec<u8>,
    out_pos: usize,
    close_after: bool,
    closed: bool,
    /// A chunked request body being decoded (it resumes where it stopped when more arrives).
    chunked: Option<ChunkDecoder>,
    watchdog: FinWatchdog,
}

#[derive(Default)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

/// Incremental decoder of a chunked request body; `pos` counts bytes after the request head.
#[derive(Default)]
struct ChunkDecoder {
    pos: usize,
    body: Vec<u8>,
    state: ChunkState,
}

impl ChunkDecoder {
    /// Ok(true) once the body and its trailers are complete.
    fn decode(&mut self, input: &[u8]) -> Result<bool, ()> {
        loop {
            let rest = &input[self.pos..];
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        return if rest.len() > 1024 {
                            Err(())
                        } else {
                            Ok(false)
                        };
                    };
                    if nl == 0 || rest[nl - 1] != b'\r' {
                        return Err(());
                    }
                    let line = &rest[..nl - 1];
                    self.pos += nl + 1;
                    if let ChunkState::Trailer = self.state {
                        if line.is_empty() {
                            return Ok(true);
                        }
                        continue;
                    }
                    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .filter(|h| !h.is_empty())
                        .and_then(|h| usize::from_str_radix(h, 16).ok())
                        .ok_or(())?;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(n) => {
                    let take = n.min(rest.len());
                    if take == 0 {
                        return Ok(false);
                    }
                    self.body.extend_from_slice(&rest[..take]);
                    self.pos += take;
                    self.state = if take == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - take)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(false);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(());
                    }
                    self.pos += 2;
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

pub struct RefServer {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    listeners: Vec<SocketHandle>,
    conns: Vec<Conn>,
    next_wake: Option<Instant>,
    fault: Fault,
    responses: usize,
    /// Every client endpoint ever accepted. smoltcp hands a SYN to the first socket that accepts
    /// it, so a duplicated or late SYN would open a second socket for a live (or finished)
    /// connection; the server drops such SYNs before smoltcp sees them (the handshake's own
    /// SYN-ACK retransmission covers a lost SYN-ACK).
    seen: BTreeSet<(IpAddress, u16)>,
}

/// Listening sockets kept ready (smoltcp's listener becomes the connection: no backlog). The pool
/// is refilled after every frame, and a frame holds at most one SYN, so a few suffice.
const LISTEN_POOL: usize = 4;

impl RefServer {
    pub fn new(now: Instant, seed: u64, fault: Fault) -> Self {
        let mut device = QueueDevice::default();
        let mut config = Config::new(HardwareAddress::Ethernet(SERVER_MAC));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, to_smol(now));
        // Dual-stack, as the engine is: the client's family picks the address.
        iface.update_ip_addrs(|addrs| {
            for family in [Family::V4, Family::V6] {
                addrs
                    .push(IpCidr::new(family.server_ip(), family.prefix_len()))
                    .expect("smoltcp holds two addresses");
            }
        });
        let mut server = RefServer {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            listeners: Vec::new(),
            conns: Vec::new(),
            next_wake: None,
            fault,
            responses: 0,
            seen: BTreeSet::new(),
        };
        server.refill_listeners();
        server
    }

    fn refill_listeners(&mut self) {
        while self.listeners.len() < LISTEN_POOL {
            let rx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
            let tx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
            let mut socket = tcp::Socket::new(rx, tx);
            socket.set_nagle_enabled(false);
            socket.set_tsval_generator(Some(tsval));
            // The server's idle timeout: a connection whose client reset it (and whose RST was
            // lost or corrupted) is probed, and the client's RST for the probe ends it.
            socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(30)));
            socket.listen(SERVER_PORT).expect("listen");
            self.listeners.push(self.sockets.add(socket));
        }
    }

    /// Runs smoltcp and the responder until nothing changes at `now`.
    fn pump(&mut self, now: Instant) {
        set_virtual_clock(now);
        loop {
            let before = self.device.tx.len();
            self.iface
                .poll(to_smol(now), &mut self.device, &mut self.sockets);
            for frame in self.device.tx.iter().skip(before) {
                if let Some((_, port)) = fin_ports(frame) {
                    let sockets = &self.sockets;
                    let conn = self.conns.iter_mut().find(|c| {
                        sockets
                            .get::<tcp::Socket>(c.handle)
                            .remote_endpoint()
                            .is_some_and(|e| e.port == port)
                    });
                    if let Some(c) = conn {
                        c.watchdog.fin_sent(now);
                    }
                }
            }
            let mut progress = false;
            // Listeners that saw a SYN are connections now.
            let sockets = &self.sockets;
            let (busy, idle): (Vec<_>, Vec<_>) = self
                .listeners
                .iter()
                .partition(|&&h| sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen);
            self.listeners = idle;
            for handle in busy {
                if let Some(ep) = self.sockets.get::<tcp::Socket>(handle).remote_endpoint() {
                    self.seen.insert((ep.addr, ep.port));
                }
                self.conns.push(Conn {
                    handle,
                    input: Vec::new(),
                    output: Vec::new(),
                    out_pos: 0,
                    close_after: false,
                    closed: false,
                    chunked: None,
                    watchdog: FinWatchdog::default(),
                });
                progress = true;
            }
            self.refill_listeners();
            let mut i = 0;
            while i < self.conns.len() {
                progress |= self.drive(i, now);
                let socket = self.sockets.get::<tcp::Socket>(self.conns[i].handle);
                match socket.state() {
                    tcp::State::Closed => {
                        let conn = self.conns.swap_remove(i);
                        self.sockets.remove(conn.handle);
                        progress = true;
                        continue;
                    }
                    // A handshake reset in SYN-RECEIVED: smoltcp's socket listens again.
                    tcp::State::Listen if self.conns[i].output.is_empty() => {
                        let conn = self.conns.swap_remove(i);
                        self.listeners.push(conn.handle);
                        progress = true;
                        continue;
                    }
                    _ => {}
                }
                {
                    i += 1;
                }
            }
            if !progress {
                break;
            }
        }
        let watchdogs = self.conns.iter().filter_map(|c| c.watchdog.deadline());
        self.next_wake = self
            .iface
            .poll_at(to_smol(now), &self.sockets)
            .map(from_smol)
            .into_iter()
            .chain(watchdogs)
            .min();
    }

    fn drive(&mut self, i: usize, now: Instant) -> bool {
        let conn = &mut self.conns[i];
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.handle);
        if conn.watchdog.expired(now, socket) {
            eprintln!(
                "reference server: FIN watchdog reset {:?} in {}",
                socket.remote_endpoint(),
                socket.state()
            );
            socket.abort();
            return true;
        }
        let mut progress = false;
        while socket.can_recv() {
            let mut chunk = [0u8; 16 * 1024];
            let n = socket.recv_slice(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            conn.input.extend_from_slice(&chunk[..n]);
            progress = true;
        }
        if progress && !conn.close_after {
            respond(conn, &mut self.responses, self.fault);
        }
        if conn.out_pos < conn.output.len() && socket.can_send() {
            let n = socket.send_slice(&conn.output[conn.out_pos..]).unwrap_or(0);
            conn.out_pos += n;
            progress |= n > 0;
            if conn.out_pos == conn.output.len() {
                conn.output.clear();
                conn.out_pos = 0;
            }
        }
        let flushed = conn.out_pos == conn.output.len();
        let peer_done = !socket.may_recv() && socket.state() != tcp::State::SynReceived;
        if !conn.closed
            && flushed
            && (conn.close_after || peer_done)
            && self.fault != Fault::NeverClose
        {
            socket.close();
            conn.closed = true;
            progress = true;
        }
        progress
    }
}

impl RefServer {
    fn is_repeated_syn(&self, frame: &[u8]) -> bool {
        tcp_segment(frame).is_some_and(|(src, tcp)| {
            tcp.syn() && !tcp.ack() && self.seen.contains(&(src, tcp.src_port()))
        })
    }
}

/// Answers every complete request in `conn.input`.
fn respond(conn: &mut Conn, responses: &mut usize, fault: Fault) {
    let mut used = 0;
    while !conn.close_after {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let head = match req.parse(&conn.input[used..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => break,
            Err(_) => {
                bad_request(conn);
                break;
            }
        };
        let mut content_length = 0;
        let mut chunked = false;
        let mut close = req.version == Some(0);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                {
                    Some(n) => content_length = n,
                    None => {
                        bad_request(conn);
                        return;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if !h.value.eq_ignore_ascii_case(b"chunked") {
                    bad_request(conn);
                    return;
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                close = h.value.eq_ignore_ascii_case(b"close");
            }
        }
        let (body, body_len) = if chunked {
            let mut decoder = conn.chunked.take().unwrap_or_default();
            match decoder.decode(&conn.input[used + head..]) {
                Ok(true) => (decoder.body, decoder.pos),
                Ok(false) => {
                    conn.chunked = Some(decoder);
                    break;
                }
                Err(()) => {
                    bad_request(conn);
                    return;
                }
            }
        } else {
            if conn.input.len() - used < head + content_length {
                break;
            }
            let body = &conn.input[used + head..used + head + content_length];
            (body.to_vec(), content_length)
        };
        let path = req.path.unwrap_or("");
        let mut response_body: Vec<u8> = match (req.method, path) {
            (Some("GET"), p) if p.starts_with("/bytes/") => match p["/bytes/".len()..].parse() {
                Ok(n) => (0..n).map(pattern_byte).collect(),
                Err(_) => {
                    bad_request(conn);
                    return;
                }
            },
            (Some("POST"), "/echo") => body,
            _ => {
                bad_request(conn);
                return;
            }
        };
        used += head + body_len;
        if !response_body.is_empty() {
            if fault == Fault::CorruptBody(*responses) {
                let mid = response_body.len() / 2;
                response_body[mid] ^= 0x20;
            }
            *responses += 1;
        }
        // Odd-sized bodies go chunked, so the client's chunked parser is exercised too.
        let chunked = response_body.len() % 2 == 1;
        let conn_hdr = if close { "Connection: close\r\n" } else { "" };
        if chunked {
            conn.output.extend_from_slice(
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{conn_hdr}\r\n")
                    .as_bytes(),
            );
            for (k, chunk) in response_body
                .chunks(3000 + response_body.len() % 5000)
                .enumerate()
            {
                let ext = if k % 2 == 1 { ";x=y" } else { "" };
                conn.output
                    .extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
                conn.output.extend_from_slice(chunk);
                conn.output.extend_from_slice(b"\r\n");
            }
            conn.output.extend_from_slice(b"0\r\n\r\n");
        } else {
            conn.output.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{conn_hdr}\r\n",
                    response_body.len()
                )
                .as_bytes(),
            );
            conn.output.extend_from_slice(&response_body);
        }
        conn.close_after = close;
    }
    conn.input.drain(..used);
}

fn bad_request(conn: &mut Conn) {
    conn.output.extend_from_slice(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    conn.close_after = true;
    conn.input.clear();
}

impl SimServer for RefServer {
    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        if self.is_repeated_syn(frame) {
            return;
        }
        self.device.rx.push_back(frame.to_vec());
        self.pump(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.device.tx.is_empty() {
            self.pump(now);
        }
        let frame = self.device.tx.pop_front()?;
        buf[..frame.len()].copy_from_slice(&frame);
        Some(frame.len())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_wake
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pump(now);
    }

    fn connection_count(&self) -> usize {
        self.conns.len()
    }
}
