//! The nfnetlink_queue socket: packets that an `iptables -j NFQUEUE --queue-num N` rule queues
//! are read as netlink messages from a raw `NETLINK_NETFILTER` socket and each gets a
//! verdict. Only what a test that delays packets needs: bind a queue (fail-open, so a slow
//! or gone consumer never drops a packet), read the queued packets (id, hook, IP length),
//! accept them unchanged or drop them, unbind. What to hold back, and for how long, is the
//! caller's.
//!
//! Protocol (linux/netfilter/nfnetlink_queue.h): every message is a `nlmsghdr`, then a
//! `nfgenmsg` (family, version 0, queue number big-endian), then netlink attributes. Config:
//! `NFQNL_MSG_CONFIG` with `NFQA_CFG_CMD` {BIND}, then `NFQA_CFG_PARAMS` {copy range, copy
//! mode PACKET}, `NFQA_CFG_QUEUE_MAXLEN` and `NFQA_CFG_FLAGS`/`MASK` fail-open. Each queued
//! packet comes as `NFQNL_MSG_PACKET` with `NFQA_PACKET_HDR` {packet id, hw proto, hook}; the
//! answer is `NFQNL_MSG_VERDICT` with `NFQA_VERDICT_HDR` {verdict, id}.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::{netns, sys};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_PACKET: u8 = 2;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// Packets the kernel may hold for this queue before fail-open accepts the rest unqueued.
const KERNEL_QUEUE_MAXLEN: u32 = 4096;
/// Bytes of each packet copied to us: the headers (a verdict does not change the packet).
const COPY_RANGE: u32 = 128;
/// A large receive buffer: a packet message lost to ENOBUFS would leave its packet queued
/// until the queue is unbound.
const RCVBUF: i32 = 8 << 20;

/// The netlink socket, bound to one queue. Unbinding drops what is still queued, so a
/// consumer accepts everything it read first; dropping the socket closes it (which also drops
/// its reference to the namespace, so `ip netns del` really frees it).
#[derive(Debug)]
pub struct QueueSocket {
    fd: OwnedFd,
    queue: u16,
    seq: u32,
}

impl QueueSocket {
    /// Opens the socket in namespace `ns` (a name under /run/netns) and binds queue `queue`,
    /// IPv4, copy mode packet, fail-open; returns once the kernel acknowledged all of it. The
    /// calling thread does not change namespace.
    pub fn bind_in(ns: &str, queue: u16) -> io::Result<QueueSocket> {
        netns::run_in(ns, || QueueSocket::bind_here(queue))
    }

    /// [`bind_in`](Self::bind_in) in the calling thread's namespace.
    pub fn bind_here(queue: u16) -> io::Result<QueueSocket> {
        let fd = sys::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )?;
        sys::force_rcvbuf(fd.as_fd(), RCVBUF);
        // nl_pid 0: the kernel assigns one.
        let mut addr: libc::sockaddr_nl = sys::zeroed_sockaddr();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sys::bind(fd.as_fd(), &addr)?;
        let mut s = QueueSocket { fd, queue, seq: 0 };
        s.request(
            NFQNL_MSG_CONFIG,
            &[(NFQA_CFG_CMD, &config_cmd(NFQNL_CFG_CMD_BIND))],
            true,
        )?;
        let mut params = [0u8; 5];
        params[..4].copy_from_slice(&COPY_RANGE.to_be_bytes());
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

    /// Waits up to `timeout` for queued packets; false when none came (or a signal did).
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        sys::wait_readable(self.fd.as_fd(), timeout)
    }

    /// Reads one datagram without waiting (using `buf`) and appends the ids of the packets
    /// it announces to `ids`; returns false when there was nothing to read. ENOBUFS
    /// (messages lost; their packets stay queued until the unbind) is not an error.
    pub fn read_packet_ids(&self, buf: &mut [u8], ids: &mut Vec<u32>) -> io::Result<bool> {
        let Some(datagram) = self.recv_now(buf)? else {
            return Ok(false);
        };
        ids.extend(packet_ids(datagram));
        Ok(true)
    }

    /// One datagram read without waiting; `None` when there was none, empty after ENOBUFS.
    fn recv_now<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<&'b [u8]>> {
        match sys::recv(self.fd.as_fd(), buf, libc::MSG_DONTWAIT) {
            Ok(n) => Ok(Some(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Some(&[])),
            Err(e) => Err(e),
        }
    }

    /// Reads one datagram without waiting (using `buf`) and appends the packets it announces
    /// to `out`; returns false when there was nothing to read. ENOBUFS as in
    /// [`read_packet_ids`](Self::read_packet_ids).
    pub fn read_packets(&self, buf: &mut [u8], out: &mut Vec<QueuedPacket>) -> io::Result<bool> {
        let Some(datagram) = self.recv_now(buf)? else {
            return Ok(false);
        };
        out.extend(queued_packets(datagram));
        Ok(true)
    }

    /// Lets packet `id` go on, unchanged.
    pub fn accept(&mut self, id: u32) -> io::Result<()> {
        self.verdict(id, NF_ACCEPT)
    }

    /// Drops packet `id` (the kernel frees it: a loss on the path).
    pub fn drop_packet(&mut self, id: u32) -> io::Result<()> {
        self.verdict(id, NF_DROP)
    }

    fn verdict(&mut self, id: u32, verdict: u32) -> io::Result<()> {
        self.request(
            NFQNL_MSG_VERDICT,
            &[(NFQA_VERDICT_HDR, &verdict_hdr(id, verdict))],
            false,
        )
    }

    /// Unbinds the queue (the kernel drops what is still queued: accept it first).
    pub fn unbind(&mut self) -> io::Result<()> {
        self.request(
            NFQNL_MSG_CONFIG,
            &[(NFQA_CFG_CMD, &config_cmd(NFQNL_CFG_CMD_UNBIND))],
            false,
        )
    }

    /// Sends one message; with `ack`, waits for the kernel's answer to it and returns its
    /// error. Packet messages cannot arrive meanwhile: acks are only asked for while binding,
    /// before any rule can queue to this socket.
    fn request(&mut self, msg: u16, attrs: &[(u16, &[u8])], ack: bool) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let buf = encode(self.queue, self.seq, msg, attrs, ack);
        sys::send(self.fd.as_fd(), &buf)?;
        if !ack {
            return Ok(());
        }
        let mut rx = [0u8; 8192];
        loop {
            let n = sys::recv(self.fd.as_fd(), &mut rx, 0)?;
            if let Some(code) = ack_code(&rx[..n], self.seq) {
                return if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                };
            }
        }
    }
}

impl AsFd for QueueSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }` for IPv4.
fn config_cmd(cmd: u8) -> [u8; 4] {
    let pf = (libc::AF_INET as u16).to_be_bytes();
    [cmd, 0, pf[0], pf[1]]
}

/// `struct nfqnl_msg_verdict_hdr { be32 verdict; be32 id; }` for packet `id`.
fn verdict_hdr(id: u32, verdict: u32) -> [u8; 8] {
    let mut hdr = [0u8; 8];
    hdr[..4].copy_from_slice(&verdict.to_be_bytes());
    hdr[4..].copy_from_slice(&id.to_be_bytes());
    hdr
}

/// A packet the kernel queued: enough to decide its fate on an emulated path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedPacket {
    pub id: u32,
    /// The netfilter hook it was queued at (`NF_INET_LOCAL_IN` 1, `NF_INET_LOCAL_OUT` 3...).
    pub hook: u8,
    /// Its length on the wire above layer 2: the IPv4 total length, or IPv6's payload length
    /// plus its 40-byte header (the copy holds the header), else the bytes copied.
    pub len: u32,
    /// Which flow it belongs to, one way: a hash of its protocol, addresses and ports (the
    /// copy holds both headers); 0 for a packet whose headers the copy does not show.
    pub flow: u64,
}

/// [`QueuedPacket::flow`] of a copied IP packet: FNV-1a over its protocol, its source and
/// destination addresses and the first four bytes after its header (the ports of TCP and
/// UDP), and for TCP whether it is a pure ACK; 0 if the copy is too short, not IPv4/IPv6,
/// or an IPv4 fragment after the first (it has no ports). IPv6 extension headers are not
/// walked: the next header's first four bytes are taken as they come, still one key per
/// flow (the emulator queues TCP only).
///
/// A TCP segment that carries no data, SYN or FIN is keyed apart from the flow's others, so
/// that a path emulator counts the two kinds separately: stacks ACK differently (Linux ACKs
/// a request before it answers; xgate's bypass sends the ACK with the answer), and one pure
/// ACK more must not move the losses of every data segment after it by one.
fn flow_key(ip: &[u8]) -> u64 {
    let (proto, addrs, transport, ip_payload) = match ip.first().map(|v| v >> 4) {
        Some(4) => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let later_fragment = ip
                .get(6..8)
                .is_some_and(|f| u16::from_be_bytes([f[0], f[1]]) & 0x1fff != 0);
            let total = ip
                .get(2..4)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
            (
                ip.get(9),
                ip.get(12..20),
                ip.get(ihl..)
                    .filter(|t| ihl >= 20 && !later_fragment && t.len() >= 4),
                total.map(|t| t.saturating_sub(ihl)),
            )
        }
        Some(6) => (
            ip.get(6),
            ip.get(8..40),
            ip.get(40..).filter(|t| t.len() >= 4),
            ip.get(4..6)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))),
        ),
        _ => (None, None, None, None),
    };
    let (Some(&proto), Some(addrs), Some(transport)) = (proto, addrs, transport) else {
        return 0;
    };
    // TCP: data offset and flags, if the copy holds them (it does: 128 bytes).
    let pure_ack = match (proto, transport.get(12..14), ip_payload) {
        (6, Some(&[offset, flags]), Some(len)) => {
            let data = len.saturating_sub(usize::from(offset >> 4) * 4);
            data == 0 && flags & 0x03 == 0
        }
        _ => false,
    };
    [proto, u8::from(pure_ack)]
        .iter()
        .chain(addrs)
        .chain(&transport[..4])
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
        .max(1)
}

/// The packets a datagram announces.
fn queued_packets(datagram: &[u8]) -> impl Iterator<Item = QueuedPacket> + '_ {
    Messages(datagram)
        .filter(|m| m.kind == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
        .filter_map(|m| queued_packet(m.body))
}

/// An `NFQNL_MSG_PACKET` body (nfgenmsg, then attributes) as a [`QueuedPacket`]; None
/// without a packet header.
fn queued_packet(body: &[u8]) -> Option<QueuedPacket> {
    let mut header = None;
    let mut len = None;
    let mut flow = 0;
    for (kind, data) in Attributes(body.get(NFGENMSG_LEN..)?) {
        match kind {
            NFQA_PACKET_HDR if data.len() >= 7 => {
                header = Some((
                    u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                    data[6],
                ));
            }
            NFQA_PAYLOAD => {
                flow = flow_key(data);
                len = Some(match data {
                    [v, _, hi, lo, ..] if v >> 4 == 4 => u32::from(u16::from_be_bytes([*hi, *lo])),
                    [v, _, _, _, hi, lo, ..] if v >> 4 == 6 => {
                        40 + u32::from(u16::from_be_bytes([*hi, *lo]))
                    }
                    _ => data.len() as u32,
                });
            }
            _ => {}
        }
    }
    let (id, hook) = header?;
    Some(QueuedPacket {
        id,
        hook,
        len: len.unwrap_or(0),
        flow,
    })
}

/// The attributes of a message body after its fixed header: (kind without the nested and
/// byte-order flags, data); a malformed one ends the walk.
struct Attributes<'a>(&'a [u8]);

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let a = self.0;
        if a.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
        if len < 4 || len > a.len() {
            self.0 = &[];
            return None;
        }
        let kind = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
        self.0 = &a[len.next_multiple_of(4).min(a.len())..];
        Some((kind, &a[4..len]))
    }
}

/// One nfnetlink_queue message: header, nfgenmsg for `queue`, attributes (each padded to 4).
fn encode(queue: u16, seq: u32, msg: u16, attrs: &[(u16, &[u8])], ack: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&[0; NLMSG_HDRLEN]);
    // nfgenmsg: family, version, res_id (the queue) big-endian.
    buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    buf.extend_from_slice(&queue.to_be_bytes());
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
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    buf
}

/// The error code (0: success) of the kernel's ack to message `seq` in a datagram.
fn ack_code(datagram: &[u8], seq: u32) -> Option<i32> {
    Messages(datagram)
        .find(|m| m.kind == NLMSG_ERROR && m.seq == seq && m.body.len() >= 4)
        .map(|m| i32::from_ne_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]))
}

/// The ids of the packets a datagram announces.
fn packet_ids(datagram: &[u8]) -> impl Iterator<Item = u32> + '_ {
    Messages(datagram)
        .filter(|m| m.kind == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
        .filter_map(|m| packet_id(m.body))
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
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let m = Message {
            kind: u16::from_ne_bytes([b[4], b[5]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            body: &b[NLMSG_HDRLEN..len],
        };
        self.0 = &b[len.next_multiple_of(4).min(b.len())..];
        Some(m)
    }
}

/// The packet id of an `NFQNL_MSG_PACKET` body (nfgenmsg, then attributes).
fn packet_id(body: &[u8]) -> Option<u32> {
    Attributes(body.get(NFGENMSG_LEN..)?)
        .find(|(kind, data)| *kind == NFQA_PACKET_HDR && data.len() >= 4)
        .map(|(_, d)| u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel would send it: header, then `body` (padded to 4).
    fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    /// An `NFQNL_MSG_PACKET` body: nfgenmsg, a mark attribute, the packet header {id, hw
    /// proto, hook}.
    fn packet_body(id: u32) -> Vec<u8> {
        let mut b = vec![libc::AF_INET as u8, 0, 0, 7];
        b.extend(attr(6, &[1, 2, 3])); // something else first, with padding
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, 3]);
        b.extend(attr(NFQA_PACKET_HDR | 0x8000, &hdr));
        b
    }

    #[test]
    fn a_request_has_header_nfgenmsg_and_padded_attributes() {
        let m = encode(
            7,
            42,
            NFQNL_MSG_CONFIG,
            &[(NFQA_CFG_PARAMS, &[0, 0, 0, 128, 2])],
            true,
        );
        assert_eq!(m.len(), 16 + 4 + 12);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), (3 << 8) | 2);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 42);
        assert_eq!(&m[16..20], &[libc::AF_UNSPEC as u8, 0, 0, 7]);
        assert_eq!(u16::from_ne_bytes([m[20], m[21]]), 9);
        assert_eq!(u16::from_ne_bytes([m[22], m[23]]), NFQA_CFG_PARAMS);
        assert_eq!(&m[24..32], &[0, 0, 0, 128, 2, 0, 0, 0]);
        let v = encode(
            7,
            43,
            NFQNL_MSG_VERDICT,
            &[(NFQA_VERDICT_HDR, &verdict_hdr(9, NF_ACCEPT))],
            false,
        );
        assert_eq!(u16::from_ne_bytes([v[6], v[7]]), NLM_F_REQUEST);
        assert_eq!(&v[24..32], &[0, 0, 0, 1, 0, 0, 0, 9]);
    }

    #[test]
    fn config_commands_name_ipv4_big_endian() {
        assert_eq!(config_cmd(NFQNL_CFG_CMD_BIND), [1, 0, 0, 2]);
        assert_eq!(config_cmd(NFQNL_CFG_CMD_UNBIND), [2, 0, 0, 2]);
    }

    #[test]
    fn packet_ids_are_read_from_every_packet_message_of_a_datagram() {
        let kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
        let mut d = message(kind, 0, &packet_body(5));
        d.extend(message(NLMSG_ERROR, 3, &0i32.to_ne_bytes()));
        d.extend(message(kind, 0, &packet_body(0x0102_0304)));
        let ids: Vec<u32> = packet_ids(&d).collect();
        assert_eq!(ids, [5, 0x0102_0304]);
        // A truncated tail is ignored, not misread.
        let cut = &d[..d.len() - 3];
        assert_eq!(packet_ids(cut).collect::<Vec<_>>(), [5]);
        // An attribute longer than its message ends the search.
        let mut bad = packet_body(1);
        bad[12] = 200;
        assert_eq!(packet_id(&bad), None);
        assert_eq!(packet_id(&[0, 0]), None);
    }

    #[test]
    fn queued_packets_carry_id_hook_and_ip_length() {
        let kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
        // The first 20 bytes of an IPv4 header of total length 1500, as copied.
        let mut ip = vec![0x45, 0, 0x05, 0xdc];
        ip.resize(20, 0);
        let mut body = packet_body(9);
        body.extend(attr(NFQA_PAYLOAD, &ip));
        let mut d = message(kind, 0, &body);
        // Without a payload the length is unknown (0); an IPv6 header of payload length 1440
        // is 1480 on the wire; a payload that is neither counts its own bytes.
        d.extend(message(kind, 0, &packet_body(10)));
        let mut v6 = packet_body(12);
        v6.extend(attr(NFQA_PAYLOAD, &[0x60, 0, 0, 0, 0x05, 0xa0, 6, 64]));
        d.extend(message(kind, 0, &v6));
        let mut other = packet_body(11);
        other.extend(attr(NFQA_PAYLOAD, &[0x50, 0, 0, 0, 0, 0]));
        d.extend(message(kind, 0, &other));
        let got: Vec<QueuedPacket> = queued_packets(&d).collect();
        assert_eq!(
            got,
            [
                QueuedPacket {
                    id: 9,
                    hook: 3,
                    len: 1500,
                    flow: 0
                },
                QueuedPacket {
                    id: 10,
                    hook: 3,
                    len: 0,
                    flow: 0
                },
                QueuedPacket {
                    id: 12,
                    hook: 3,
                    len: 1480,
                    flow: 0
                },
                QueuedPacket {
                    id: 11,
                    hook: 3,
                    len: 6,
                    flow: 0
                },
            ]
        );
        // No packet header: nothing.
        let mut headless = vec![libc::AF_INET as u8, 0, 0, 7];
        headless.extend(attr(NFQA_PAYLOAD, &ip));
        assert_eq!(queued_packet(&headless), None);
        assert_eq!(verdict_hdr(7, NF_DROP), [0, 0, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn a_packets_flow_is_its_addresses_and_ports_one_way() {
        // IPv4, header 20 bytes, 10.0.0.1:40000 -> 10.0.0.2:80, then the next packet of it.
        let v4 = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ihl: u8| {
            let mut ip = vec![0x40 | ihl, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
            ip.extend(src);
            ip.extend(dst);
            ip.resize(usize::from(ihl) * 4, 1);
            ip.extend(sport.to_be_bytes());
            ip.extend(dport.to_be_bytes());
            ip.extend([0u8; 16]);
            ip
        };
        let a = flow_key(&v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 5));
        assert_ne!(a, 0);
        let mut later = v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 5);
        later[2] = 5; // another length, another sequence number: the same flow
        later[24] = 0xff;
        assert_eq!(flow_key(&later), a);
        // The ports are found after options too.
        assert_eq!(flow_key(&v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 8)), a);
        for other in [
            v4([10, 0, 0, 1], [10, 0, 0, 2], 40001, 80, 5),
            v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 81, 5),
            v4([10, 0, 0, 3], [10, 0, 0, 2], 40000, 80, 5),
            // The other way is another key: each direction counts its own packets.
            v4([10, 0, 0, 2], [10, 0, 0, 1], 80, 40000, 5),
        ] {
            assert_ne!(flow_key(&other), a);
        }
        let mut udp = v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 5);
        udp[9] = 17;
        assert_ne!(flow_key(&udp), a, "another protocol, another flow");
        let mut fragment = v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 5);
        fragment[7] = 185; // offset 1480: payload bytes where ports would be
        assert_eq!(flow_key(&fragment), 0);
        let mut v6 = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        v6.extend([0xfd; 32]);
        v6.extend(443u16.to_be_bytes());
        v6.extend(50000u16.to_be_bytes());
        v6.extend([0u8; 16]);
        let k6 = flow_key(&v6);
        assert_ne!(k6, 0);
        // Addresses (bytes 8-39) and ports (40-43) make the flow; the hop limit and the
        // bytes after the ports do not.
        for (byte, same) in [
            (8, false),
            (39, false),
            (40, false),
            (43, false),
            (7, true),
            (44, true),
        ] {
            let mut other = v6.clone();
            other[byte] ^= 0x55;
            assert_eq!(flow_key(&other) == k6, same, "byte {byte}");
        }
        // TCP segments without data, SYN or FIN (pure ACKs) are counted apart; a SYN or FIN
        // without data is not one. IPv4, 20-byte headers (data offset 5).
        let tcp = |total: u16, flags: u8| {
            let mut ip = v4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 5);
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[32] = 0x50;
            ip[33] = flags;
            ip
        };
        let data = flow_key(&tcp(1500, 0x18));
        let ack = flow_key(&tcp(40, 0x10));
        assert_ne!(ack, data, "a pure ACK");
        assert_eq!(flow_key(&tcp(40, 0x12)), data, "a SYN-ACK");
        assert_eq!(flow_key(&tcp(40, 0x11)), data, "a FIN");
        assert_eq!(flow_key(&tcp(41, 0x10)), data, "one byte of data");
        assert_eq!(flow_key(&tcp(52, 0x10)), data, "12 bytes, no options");
        let mut with_options = tcp(52, 0x10);
        with_options[32] = 0x80; // 32-byte TCP header: those 12 bytes are options
        assert_eq!(
            flow_key(&with_options),
            ack,
            "an ACK with options is still pure"
        );
        // IPv6: payload length 20, data offset 5, ACK only.
        let mut v6_ack = v6.clone();
        v6_ack[4..6].copy_from_slice(&20u16.to_be_bytes());
        v6_ack[52] = 0x50;
        v6_ack[53] = 0x10;
        let mut v6_data = v6_ack.clone();
        v6_data[4..6].copy_from_slice(&1220u16.to_be_bytes());
        assert_ne!(flow_key(&v6_ack), flow_key(&v6_data));
        // Too short to show the ports, a bad header length, or not IP: no flow.
        assert_eq!(
            flow_key(&v4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 5)[..22]),
            0
        );
        assert_eq!(flow_key(&v4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 2)), 0);
        assert_eq!(flow_key(&[0x50, 0, 0, 0]), 0);
        assert_eq!(flow_key(&[]), 0);
    }

    #[test]
    fn acks_are_matched_by_sequence_number() {
        let mut d = message(NLMSG_ERROR, 1, &(-libc::EPERM).to_ne_bytes());
        d.extend(message(NLMSG_ERROR, 2, &0i32.to_ne_bytes()));
        assert_eq!(ack_code(&d, 1), Some(-libc::EPERM));
        assert_eq!(ack_code(&d, 2), Some(0));
        assert_eq!(ack_code(&d, 3), None);
    }
}
