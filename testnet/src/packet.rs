//! A raw `AF_PACKET` socket on one interface of a namespace: whole Ethernet frames out,
//! every IPv4 frame the interface sees in. For tests that craft segments a normal socket
//! cannot send (spoofed sources, broken checksums, fragments) and read the replies as they
//! are on the wire.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::{netns, sys};

/// Receive buffer asked for: a few thousand frames, so a reader that is a little late (a
/// busy test machine) loses none.
const RCVBUF: i32 = 8 << 20;

/// The socket; `Sync`, so one thread can read while others send.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket in namespace `ns`, bound to interface `ifname` there, for IPv4
    /// frames. The socket stays bound to that namespace's interface; the calling thread does
    /// not change namespace.
    pub fn open(ns: &str, ifname: &str) -> io::Result<PacketSocket> {
        netns::run_in(ns, || PacketSocket::open_here(ifname))
    }

    /// Opens the socket on `ifname` of the calling thread's namespace.
    pub fn open_here(ifname: &str) -> io::Result<PacketSocket> {
        Self::open_protocol(ifname, libc::ETH_P_IP as u16)
    }

    /// [`open`](Self::open) for every protocol (`ETH_P_ALL`): IPv6 and ICMP too, each frame
    /// seen before the interface's ingress hooks (tc, nftables `netdev`) and the IP stack act
    /// on it, and the interface's outgoing frames as well.
    pub fn open_all(ns: &str, ifname: &str) -> io::Result<PacketSocket> {
        Self::open_for(ns, ifname, libc::ETH_P_ALL as u16)
    }

    /// [`open`](Self::open) for one EtherType (`ETH_P_IPV6`...): the frames of that protocol
    /// the interface receives, after its ingress hooks, not the ones it sends.
    pub fn open_for(ns: &str, ifname: &str, protocol: u16) -> io::Result<PacketSocket> {
        netns::run_in(ns, || Self::open_protocol(ifname, protocol))
    }

    fn open_protocol(ifname: &str, protocol: u16) -> io::Result<PacketSocket> {
        let proto = protocol.to_be();
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto))?;
        let mut sll: libc::sockaddr_ll = sys::zeroed_sockaddr();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = sys::if_index(ifname)? as i32;
        sys::bind(fd.as_fd(), &sll)?;
        sys::force_rcvbuf(fd.as_fd(), RCVBUF);
        Ok(PacketSocket { fd })
    }

    /// Puts one whole Ethernet frame on the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        sys::send(self.fd.as_fd(), frame)
    }

    /// Waits up to `timeout` for a frame to read; false when none came.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        sys::wait_readable(self.fd.as_fd(), timeout)
    }

    /// The next frame into `buf` without waiting: its length, or `None` when there is none.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match sys::recv(self.fd.as_fd(), buf, libc::MSG_DONTWAIT) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_or_namespace_is_an_error() {
        // Without CAP_NET_RAW the socket itself fails first; either way, no panic.
        assert!(PacketSocket::open_here("no-such-if-xyz").is_err());
        assert!(PacketSocket::open("xgate-testnet-no-such-netns", "lo").is_err());
    }

    #[test]
    fn frames_sent_on_loopback_are_read_back() {
        if !crate::is_root() {
            eprintln!("SKIPPED: needs root (CAP_NET_RAW)");
            return;
        }
        let s = PacketSocket::open_here("lo").unwrap();
        // A frame of the IPv4 ethertype (the socket's filter) with a payload the IP layer
        // discards: the packet socket sees it leave (and come back) on `lo`.
        let mut frame = [0u8; 64];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame[14..].copy_from_slice(&[0x5a; 50]);
        s.send(&frame).unwrap();
        let mut buf = [0u8; 2048];
        let mut seen = false;
        while !seen && s.wait_readable(Duration::from_secs(1)).unwrap() {
            while let Some(n) = s.try_recv(&mut buf).unwrap() {
                seen |= buf[..n] == frame[..];
            }
        }
        assert!(seen, "the frame sent was not read back");
    }
}
