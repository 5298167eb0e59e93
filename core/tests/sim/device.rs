//! A smoltcp `Device` over two in-memory queues, the ARP answering the harness does in place of
//! the kernel, and the conversions between the two `Instant` types.

use std::collections::VecDeque;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Ipv4Address, Ipv4Packet, TcpPacket,
};

use xgate_core::time::{Duration, Instant};

pub const MTU: usize = 1500;
pub const ETH_HEADER: usize = 14;

pub fn to_smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
}

pub fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

thread_local! {
    /// Virtual milliseconds for smoltcp's TCP timestamp option (its generator is a plain `fn`).
    static VIRTUAL_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub fn set_virtual_clock(now: Instant) {
    VIRTUAL_MS.with(|c| c.set(now.as_millis()));
}

/// TSval generator for smoltcp sockets: the virtual clock in milliseconds.
pub fn tsval() -> u32 {
    VIRTUAL_MS.with(|c| c.get() as u32)
}

/// Frames waiting to be read by smoltcp, and frames smoltcp wrote.
#[derive(Default)]
pub struct QueueDevice {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: VecDeque<Vec<u8>>,
    /// The IP MTU smoltcp sees (its SYN's MSS is this minus 40); `None` = [`MTU`].
    pub mtu: Option<usize>,
}

pub struct RxToken(Vec<u8>);
pub struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu.unwrap_or(MTU) + ETH_HEADER;
        caps
    }
}

/// If `frame` is an ARP request for one of `table`'s addresses, the reply to hand back to the
/// requester (the harness plays the kernel's part: the server does not answer ARP).
pub fn arp_reply(frame: &[u8], table: &[(Ipv4Address, EthernetAddress)]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = arp
    else {
        return None;
    };
    let &(_, mac) = table.iter().find(|(ip, _)| *ip == target_protocol_addr)?;
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut out = vec![0; ETH_HEADER + reply.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut out[..]);
    eth.set_src_addr(mac);
    eth.set_dst_addr(source_hardware_addr);
    eth.set_ethertype(EthernetProtocol::Arp);
    reply.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    Some(out)
}

/// True for any ARP frame (requests are answered by the harness and never cross the link).
pub fn is_arp(frame: &[u8]) -> bool {
    frame.len() >= ETH_HEADER && frame[12..14] == [0x08, 0x06]
}

/// How long a smoltcp socket may go without sending its unacknowledged FIN before the harness
/// calls it stranded: over twice smoltcp's maximum RTO (60 s), so a FIN that is merely being
/// retransmitted slowly is never mistaken for a stranded one.
pub const FIN_WATCHDOG: Duration = Duration::from_secs(130);

/// smoltcp 0.14 can strand its FIN: when duplicate ACKs arm the fast-retransmit timer while only
/// the FIN is outstanding, the timer's expiry clears the timer and flags a fast retransmit that
/// needs queued data, so with an empty send buffer nothing is ever sent again (FIN-WAIT-1 /
/// LAST-ACK forever, no timer). This watchdog resets such a socket once it has sent no FIN for
/// [`FIN_WATCHDOG`] with nothing else queued, and the caller reports it, rather than failing the
/// run for a bug in the test's own TCP stack. A peer that never ACKs a FIN that smoltcp keeps
/// retransmitting does not trip it. It also provides the wake-up time, since the stranded socket
/// asks for none.
#[derive(Debug, Default)]
pub struct FinWatchdog {
    since: Option<Instant>,
    last_fin: Option<Instant>,
}

impl FinWatchdog {
    /// The socket sent a segment carrying FIN at `now`.
    pub fn fin_sent(&mut self, now: Instant) {
        self.last_fin = Some(now);
    }

    /// True when the socket's FIN looks stranded.
    pub fn expired(&mut self, now: Instant, socket: &tcp::Socket) -> bool {
        use tcp::State::*;
        if matches!(socket.state(), FinWait1 | Closing | LastAck) && socket.send_queue() == 0 {
            self.since.get_or_insert(now);
            self.deadline().is_some_and(|d| now >= d)
        } else {
            self.since = None;
            false
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        let since = self.since?;
        Some(since.max(self.last_fin.unwrap_or(since)) + FIN_WATCHDOG)
    }
}

/// `(source port, destination port)` of a TCP segment that carries FIN.
pub fn fin_ports(frame: &[u8]) -> Option<(u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    tcp.fin().then(|| (tcp.src_port(), tcp.dst_port()))
}
