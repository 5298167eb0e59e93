//! A smoltcp `Device` over two in-memory queues, the ARP answering the harness does in place of
//! the kernel, and the conversions between the two `Instant` types.

use std::collections::VecDeque;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Ipv4Address,
};

use smoltcp::socket::tcp;

use dataplane::time::{Duration, Instant};

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
        caps.max_transmission_unit = MTU + ETH_HEADER;
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

/// How long a smoltcp socket may sit in FIN-WAIT-1, CLOSING or LAST-ACK before the harness
/// resets it: several maximum RTOs (smoltcp caps the RTO at 60 s).
pub const FIN_WATCHDOG: Duration = Duration::from_secs(300);

/// smoltcp 0.14 can leave its FIN unacknowledged with no retransmission timer armed (seen after
/// a fast retransmit under loss: FIN-WAIT-1, timer idle, `pending_fast_retransmit` set), so the
/// FIN is never sent again and the connection never ends. This watchdog resets such a socket
/// after [`FIN_WATCHDOG`] and reports it, rather than failing the run for a bug in the test's
/// own TCP stack. It also provides the wake-up time, since the stuck socket asks for none.
#[derive(Debug, Default)]
pub struct FinWatchdog {
    since: Option<Instant>,
}

impl FinWatchdog {
    /// True when the socket has waited for the ACK of its FIN for too long.
    pub fn expired(&mut self, now: Instant, socket: &tcp::Socket) -> bool {
        use tcp::State::*;
        if matches!(socket.state(), FinWait1 | Closing | LastAck) {
            let since = *self.since.get_or_insert(now);
            now - since >= FIN_WATCHDOG
        } else {
            self.since = None;
            false
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + FIN_WATCHDOG)
    }
}
