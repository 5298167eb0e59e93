//! A smoltcp `Device` over two in-memory queues, the ARP and neighbour discovery answering the
//! harness does in place of the kernel, and the conversions between the two `Instant` types.

use std::collections::VecDeque;

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    HardwareAddress, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet,
    Ipv6Repr, NdiscNeighborFlags, NdiscRepr, TcpPacket,
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
    /// The IP MTU smoltcp sees (its SYN's MSS is this minus 40, or 60 over IPv6); `None` =
    /// [`MTU`].
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

/// Frames the kernel handles in production, never the server under test: ARP, and ICMPv6
/// (the XDP program passes both to the kernel). The harness takes them off the link and
/// answers requests with [`neighbour_reply`].
pub fn for_the_kernel(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => true,
        EthernetProtocol::Ipv6 => Ipv6Packet::new_checked(eth.payload())
            .is_ok_and(|ip| ip.next_header() == IpProtocol::Icmpv6),
        _ => false,
    }
}

/// If `frame` is an ARP request or a Neighbour Solicitation for one of `table`'s addresses,
/// the reply to hand back to the requester (the harness plays the kernel's part: the server
/// does not answer either).
pub fn neighbour_reply(frame: &[u8], table: &[(IpAddress, EthernetAddress)]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (target, requester_mac, reply) = match eth.ethertype() {
        EthernetProtocol::Arp => arp_reply(eth.payload(), table)?,
        EthernetProtocol::Ipv6 => neighbour_advert(eth.payload(), table)?,
        _ => return None,
    };
    let mut out = vec![0; ETH_HEADER + reply.len()];
    let mut eth_out = EthernetFrame::new_unchecked(&mut out[..]);
    eth_out.set_src_addr(target);
    // Replies are unicast even though an NS goes to a multicast MAC (RFC 4861 §7.2.4).
    eth_out.set_dst_addr(requester_mac);
    eth_out.set_ethertype(eth.ethertype());
    eth_out.payload_mut().copy_from_slice(&reply);
    Some(out)
}

/// The MAC `table` gives `addr`.
fn lookup(table: &[(IpAddress, EthernetAddress)], addr: IpAddress) -> Option<EthernetAddress> {
    table
        .iter()
        .find(|(ip, _)| *ip == addr)
        .map(|&(_, mac)| mac)
}

/// (the target's MAC, the requester's MAC, the ARP reply) for an ARP request.
fn arp_reply(
    payload: &[u8],
    table: &[(IpAddress, EthernetAddress)],
) -> Option<(EthernetAddress, EthernetAddress, Vec<u8>)> {
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&ArpPacket::new_checked(payload).ok()?).ok()?
    else {
        return None;
    };
    let mac = lookup(table, IpAddress::Ipv4(target_protocol_addr))?;
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut out = vec![0; reply.buffer_len()];
    reply.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    Some((mac, source_hardware_addr, out))
}

/// (the target's MAC, the requester's MAC, the IPv6 packet of the Neighbour Advertisement)
/// for a Neighbour Solicitation that passes RFC 4861 §7.1.1's checks smoltcp makes too (hop
/// limit 255, valid checksum); its source link-layer address option names the requester.
fn neighbour_advert(
    packet: &[u8],
    table: &[(IpAddress, EthernetAddress)],
) -> Option<(EthernetAddress, EthernetAddress, Vec<u8>)> {
    let ip = Ipv6Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Icmpv6 || ip.hop_limit() != 255 {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let caps = ChecksumCapabilities::default();
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    let Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr,
        lladdr: Some(lladdr),
    }) = Icmpv6Repr::parse(&src, &dst, &icmp, &caps).ok()?
    else {
        return None;
    };
    let HardwareAddress::Ethernet(requester) = lladdr.parse(Medium::Ethernet).ok()?;
    let mac = lookup(table, IpAddress::Ipv6(target_addr))?;
    let advert = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
        target_addr,
        lladdr: Some(mac.into()),
    });
    let ip_repr = Ipv6Repr {
        src_addr: target_addr,
        dst_addr: src,
        next_header: IpProtocol::Icmpv6,
        payload_len: advert.buffer_len(),
        hop_limit: 255,
    };
    let mut out = vec![0; ip_repr.buffer_len() + advert.buffer_len()];
    let mut ip_out = Ipv6Packet::new_unchecked(&mut out[..]);
    ip_repr.emit(&mut ip_out);
    advert.emit(
        &target_addr,
        &src,
        &mut Icmpv6Packet::new_unchecked(ip_out.payload_mut()),
        &caps,
    );
    Some((mac, requester, out))
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

/// The IP source address and TCP segment of an Ethernet frame of either family. Lengths are
/// checked, checksums are not (what the harness reads off a frame, it reads as sent).
pub fn tcp_segment(frame: &[u8]) -> Option<(IpAddress, TcpPacket<&[u8]>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (src, next_header, payload) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            (
                IpAddress::Ipv4(ip.src_addr()),
                ip.next_header(),
                ip.payload(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            (
                IpAddress::Ipv6(ip.src_addr()),
                ip.next_header(),
                ip.payload(),
            )
        }
        _ => return None,
    };
    if next_header != IpProtocol::Tcp {
        return None;
    }
    Some((src, TcpPacket::new_checked(payload).ok()?))
}

/// `(source port, destination port)` of a TCP segment that carries FIN.
pub fn fin_ports(frame: &[u8]) -> Option<(u16, u16)> {
    let (_, tcp) = tcp_segment(frame)?;
    tcp.fin().then(|| (tcp.src_port(), tcp.dst_port()))
}
